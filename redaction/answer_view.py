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

_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_HTML_REF = re.compile(r"&#(x[0-9A-Fa-f]+|\d+);")
_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}
DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d")
# everything the view may read differently from the text, tried in this order at each position
_DECODABLE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\[ntr\"\\/]|&#(?:x[0-9A-Fa-f]+|\d+);|[^\x00-\x7f]")


class Identity:
    """The index of a view that is the text itself (most answers): ``index[i] == i``."""

    def __getitem__(self, position: int) -> int:
        return position


@functools.lru_cache(maxsize=4096)
def fold(char: str) -> str:
    """How the view reads one decoded non-ASCII character (answers repeat few distinct ones)."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""  # zero-width space, joiners, soft hyphen, bidi controls
    if category == "Zs":
        return " "
    if char in DASHES:
        return "-"
    return unicodedata.normalize("NFKC", char)


def _decoded(piece: str) -> str:
    """What one ``_DECODABLE`` match reads as (itself if an HTML reference names no character)."""
    lead = piece[0]
    if lead == "%":
        decoded = chr(int(piece[1:], 16))
    elif lead == "\\":
        decoded = chr(int(piece[2:], 16)) if piece[1] == "u" else _JSON_ESCAPES[piece[1]]
    elif lead == "&":
        ref = piece[2:-1]
        code = int(ref[1:], 16) if ref[0] == "x" else int(ref)
        if code > 0x10FFFF:
            return piece  # not a character: read as written
        decoded = chr(code)
    else:
        decoded = lead
    return decoded if decoded.isascii() else fold(decoded)


def decoded_view(text: str) -> tuple[str, list[int] | Identity]:
    """(view, index): ``view[i]`` comes from ``text[index[i]:]``; encodings and disguises undone."""
    if text.isascii() and "%" not in text and "\\" not in text and "&" not in text:
        return text, Identity()  # nothing to undo (str tests, faster than the regex)
    out: list[str] = []
    index: list[int] = []
    cursor = 0
    changed = False
    for match in _DECODABLE.finditer(text):
        start, piece = match.start(), match.group(0)
        decoded = _decoded(piece)
        if decoded == piece:
            continue  # read as written: stays part of the plain run
        changed = True
        out.append(text[cursor:start])
        index.extend(range(cursor, start))
        out.append(decoded)
        index.extend([start] * len(decoded))
        cursor = match.end()
    if not changed:
        return text, Identity()
    out.append(text[cursor:])
    index.extend(range(cursor, len(text)))
    return "".join(out), index


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
