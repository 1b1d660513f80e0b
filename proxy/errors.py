"""The proxy's errors, each mapped to one HTTP status and an OpenAI-style JSON body.

Messages are written for the client and never include request text, values or upstream bodies.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from redaction import DetectionTimeout, DetectorUnavailable, RedactionError, TooMuchText, UninspectableContent


class ProxyError(Exception):
    status = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ProxyError):
    status, error_type, code = 400, "invalid_request_error", "invalid_request"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class ContentNotInspectable(InvalidRequest):
    code = "content_not_inspectable"


class Unauthorized(ProxyError):
    status, error_type, code = 401, "invalid_request_error", "invalid_api_key"


class PayloadTooLarge(ProxyError):
    status, error_type, code = 413, "invalid_request_error", "request_too_large"


class UpstreamUnreachable(ProxyError):
    status, error_type, code = 502, "upstream_error", "upstream_unreachable"


class UpstreamBroken(ProxyError):
    status, error_type, code = 502, "upstream_error", "upstream_bad_response"


class AnswerRefused(ProxyError):
    """The upstream's answer holds personal data of a type the response policy blocks."""

    status, error_type, code = 502, "upstream_error", "answer_blocked"


class UpstreamTimeout(ProxyError):
    status, error_type, code = 504, "upstream_error", "upstream_timeout"


class DetectorDown(ProxyError):
    status, error_type, code = 503, "service_unavailable", "detector_unavailable"


class DetectionTooSlow(DetectorDown):
    code = "detection_timeout"


class StorageDown(ProxyError):
    status, error_type, code = 503, "service_unavailable", "storage_unavailable"


class ShuttingDown(ProxyError):
    """The proxy stopped before the exchange ended (``shutdown_timeout`` ran out)."""

    status, error_type, code = 503, "service_unavailable", "proxy_shutting_down"


def from_redaction_error(exc: RedactionError) -> ProxyError:
    """Every way the request side can fail maps to a refusal: nothing is forwarded."""
    if isinstance(exc, TooMuchText):
        return PayloadTooLarge(f"{exc} (max_inspected_chars); nothing was forwarded")
    if isinstance(exc, UninspectableContent):
        return ContentNotInspectable(f"{exc}; nothing was forwarded")
    if isinstance(exc, DetectionTimeout):
        return DetectionTooSlow(f"personal-data detection timed out; nothing was forwarded ({exc})")
    if isinstance(exc, DetectorUnavailable):
        return DetectorDown(f"personal-data detector unavailable; nothing was forwarded ({exc})")
    return DetectorDown("the request could not be sanitised; nothing was forwarded")


ErrorStyle = Literal["openai", "anthropic"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def error_body(message: str, error_type: str, code: str | None, style: ErrorStyle = "openai") -> dict[str, Any]:
    """The error JSON each SDK parses: OpenAI's ``{"error": {...}}`` or Anthropic's typed one."""
    if style == "anthropic":
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def error_json(exc: ProxyError, style: ErrorStyle = "openai") -> dict[str, Any]:
    if style == "anthropic":
        return error_body(exc.message, _ANTHROPIC_TYPES.get(exc.status, "api_error"), exc.code, style)
    return error_body(exc.message, exc.error_type, exc.code)


ID_HEADER = "X-Privacy-Proxy-Id"


def error_response(exc: ProxyError, exchange_id: str | None = None, style: ErrorStyle = "openai") -> web.Response:
    headers = {ID_HEADER: exchange_id} if exchange_id else None
    return web.json_response(error_json(exc, style), status=exc.status, headers=headers)
