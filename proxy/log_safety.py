"""Keep personal data out of the process log, including what libraries log.

aiohttp logs a malformed request with the offending bytes (a URL, a header line) and a
traceback; other libraries put values in exception messages. The filter below keeps every
record but replaces exception details with the exception's type and where it was raised.
"""

from __future__ import annotations

import logging
import sys
import traceback
from urllib.parse import urlsplit


class DropExceptionDetails(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
            record.msg = f"{record.getMessage()} [{type(exc).__module__}.{type(exc).__name__}{where}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


# libraries whose INFO lines describe their own internals (alembic 1.17+ lists every plugin it
# loads when the storage layer imports it): shown only at log_level DEBUG
QUIET_LIBRARIES = ("alembic",)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, log_format: str) -> None:
    """The process log on stderr: readable lines, or one JSON object per line (``log_format: json``,
    via python-json-logger) whose fields include the exchange's request id, status and timings."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(TEXT_FORMAT.replace(":", ""), rename_fields={"asctime": "time", "levelname": "level"})
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for library in QUIET_LIBRARIES:
            logging.getLogger(library).setLevel(logging.WARNING)
    install()


def install(root: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of the root logger (where all records end up)."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, DropExceptionDetails) for f in handler.filters):
            handler.addFilter(DropExceptionDetails())


def without_password(url: str | None) -> str | None:
    """A URL as it may be logged or printed: a password in it (``https://user:secret@host``)
    becomes ``***``."""
    if not url:
        return url
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url
