"""The answer guard's view of a text: escapes, character references and disguises undone.

``decoded_view`` reads percent-encoding, ``\\uXXXX`` and JSON escapes, HTML character
references, zero-width characters, Unicode spaces, dashes and compatibility forms (NFKC), and
keeps for each character of the view the offset in the text it came from, so that a value found
in the view is redacted where it is written.

Only what can change is visited one by one: one regex finds escapes, references and non-ASCII
characters, and the plain ASCII between them is copied as it is. An answer with a curly quote
costs about as little as a plain one (a per-character loop took ~0.4 ms per KB).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from redaction.normalize import folded_in_place, rewritten

_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_HTML_REF = re.compile(r"&#(x[0-9A-Fa-f]+|\d+);")
_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}
DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d")
# everything the view may read differently from the text. It begins with a character class so
# that re skips to the next candidate character at C speed (an alternation of escapes is tried at
# every position: ~3x slower on a 1 KB answer); the lookbehinds then tell which escape it starts.
_DECODABLE = re.compile(
    r"[%\\&\x80-\U0010ffff]"
    r"(?:(?<=%)[0-9A-Fa-f]{2}|(?<=\\)(?:u[0-9A-Fa-f]{4}|[ntr\"\\/])|(?<=&)#(?:x[0-9A-Fa-f]+|\d+);|(?<=[^\x00-\x7f]))"
)


class Identity:
    """The index of a view that is the text itself (most answers): ``index[i] == i``."""

    def __getitem__(self, position: int) -> int:
        return position

    def __iter__(self) -> None:
        raise TypeError("an identity index has no length to iterate over")


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """How the view reads one decoded non-ASCII character (answers repeat few distinct ones)."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""  # zero-width space, joiners, soft hyphen, bidi controls
    if category == "Zs":
        return " "
    if char in DASHES:
        return "-"
    return unicodedata.normalize("NFKC", char)


_BEYOND_UNICODE = 0x110000


def _reference_code(ref: str) -> int:
    """The code point an HTML character reference's number names (``x41`` or ``65``, digits of
    any script), capped just above Unicode's range: any number of digits, no int() size limit."""
    if ref[0] == "x":
        return min(int(ref[1:], 16), _BEYOND_UNICODE)
    code = 0
    for digit in ref:
        code = min(code * 10 + unicodedata.decimal(digit), _BEYOND_UNICODE)
    return code


def _decoded(piece: str) -> str | None:
    """What one ``_DECODABLE`` match reads as; None for an HTML reference that names no character
    (its "&" is then read as written, and what follows it character by character)."""
    lead = piece[0]
    if lead == "%":
        decoded = chr(int(piece[1:], 16))
    elif lead == "\\":
        decoded = chr(int(piece[2:], 16)) if piece[1] == "u" else _JSON_ESCAPES[piece[1]]
    elif lead == "&":
        code = _reference_code(piece[2:-1])
        if code >= _BEYOND_UNICODE:
            return None
        decoded = chr(code)
    else:
        decoded = lead
    return decoded if decoded.isascii() else _fold(decoded)


def decoded_view(text: str) -> tuple[str, list[int] | Identity]:
    """(view, index): ``view[i]`` comes from ``text[index[i]:]``; encodings and disguises undone."""
    if "%" not in text and "\\" not in text and "&" not in text:  # no escapes (str tests, faster than the regex)
        if text.isascii():
            return text, Identity()  # nothing to undo
        if (view := folded_in_place(text, _fold)) is not None:
            return view, Identity()
    # an HTML reference that names no character ("&#99999999;") decodes to None: its "&" is read
    # as written and what follows it character by character
    view, index = rewritten(text, _DECODABLE, _decoded) or (text, None)
    return view, Identity() if index is None else index


def extend_to_encoding(text: str, end: int) -> int:
    """If the last decoded character came from an escape sequence, include all of it."""
    for pattern in (_PERCENT, _UNICODE_ESCAPE, _HTML_REF):
        for back in range(1, 10):
            start = end - back
            if start < 0:
                break
            m = pattern.match(text, start)
            if m and m.start() < end <= m.end():
                return m.end()
    return end
