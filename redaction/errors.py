"""Why a request could not be sanitised. Messages never carry request text or values."""


class RedactionError(Exception):
    """Base class: the request must not be forwarded."""


class DetectorUnavailable(RedactionError):
    """The detector is not loaded, or its worker died."""


class DetectionTimeout(RedactionError):
    """Detection took longer than the configured limit."""


class UninspectableContent(RedactionError):
    """The request carries content the detector cannot read (image, audio, file) and policy blocks it."""


class TooMuchText(RedactionError):
    """The request carries more text than the proxy is configured to inspect."""
