"""JSON in and out of the proxy: orjson (5-10x faster than the standard library on request and
answer bodies) wherever it reads and writes exactly what the standard library would.

orjson differs in three places, each handled here so that no value ever changes on its way:
- integers beyond 64 bits: orjson reads them as floats (a silent change), so a body with a run
  of 19 or more digits is read by the standard library instead (a long digit string costs speed,
  never exactness); writing such an integer makes orjson raise, and the standard library writes it;
- lone surrogate escapes ("\\ud800", legal JSON, not UTF-8): orjson refuses to read and to write
  them, the standard library reads them and writes them as escapes;
- NaN and infinities: orjson would write null. They are not JSON (RFC 8259), so reading refuses
  them everywhere ("NaN", "Infinity" and overflowing numbers such as 1e400): none is ever written.

Output is compact (no spaces after separators), with non-ASCII characters as UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def loads(data: bytes | str) -> Any:
    """Parse JSON; ``ValueError`` (``UnicodeDecodeError`` for bad UTF-8, ``RecursionError`` for
    absurd nesting) as the standard library raises them."""
    long_digits = _LONG_DIGITS_BYTES if isinstance(data, bytes) else _LONG_DIGITS
    if long_digits.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # invalid, or a form only the standard library reads: it decides, with its errors
    return json.loads(data, parse_constant=_not_json, parse_float=_finite)


def dumps(value: Any) -> bytes:
    """UTF-8 JSON of a value read by ``loads`` (or built from such values)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate or an integer beyond 64 bits
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # the surrogate: as an escape
            return json.dumps(value, separators=(",", ":")).encode()
