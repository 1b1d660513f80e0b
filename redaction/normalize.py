"""What the detector reads: text with the disguises of copy-paste and tokenizers undone.

Non-breaking and other Unicode spaces become plain spaces, zero-width and other format
characters are dropped, and full-width or compatibility forms are folded (NFKC), so that
``4111\u00a01111...`` or ``jane\u200b.roe@example.com`` are seen as what they are. Offsets found
in the normalised view map back to the original text, which is what gets replaced.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

LINE_SEPARATORS = frozenset("\u2028\u2029\u0085")
REPLACEMENT_CHARACTER = "\ufffd"
NON_ASCII = re.compile(r"[^\x00-\x7f]")


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """How the detector reads one non-ASCII character (texts repeat few distinct ones)."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""  # zero-width space/joiners, soft hyphen, bidi controls
    if category == "Zs" or char in LINE_SEPARATORS:
        return " "
    if category == "Cs":
        return REPLACEMENT_CHARACTER  # a lone surrogate (a JSON escape allows one): spaCy cannot encode it
    return unicodedata.normalize("NFKC", char)


def rewritten(
    text: str, pattern: re.Pattern[str], replace: Callable[[str], str | None]
) -> tuple[str, list[int] | None] | None:
    """``text`` with each match of ``pattern`` read as ``replace(match)``, and for each character
    of the result the offset it came from (None when that is its own offset: every change read one
    character as one, like a curly quote); None when nothing changed. Only the matches are visited
    one by one; the text between them is copied. ``replace`` returning None means "not a match
    after all": its first character stays and the search resumes after it."""
    out: list[str] = []
    changes: list[tuple[int, int, int]] = []  # (start, end, length of the replacement)
    cursor = position = 0
    while match := pattern.search(text, position):
        start, piece = match.start(), match.group(0)
        replacement = replace(piece)
        if replacement is None:
            position = start + 1
            continue
        position = match.end()
        if replacement == piece:
            continue  # read as written: stays part of the plain run
        out += (text[cursor:start], replacement)
        changes.append((start, position, len(replacement)))
        cursor = position
    if not out:
        return None
    out.append(text[cursor:])
    if all(end - start == 1 == size for start, end, size in changes):
        return "".join(out), None
    return "".join(out), _offsets(len(text), changes)


def _offsets(length: int, changes: list[tuple[int, int, int]]) -> list[int]:
    """For each character of a rewritten text, the offset in the original it came from."""
    index: list[int] = []
    cursor = 0
    for start, end, size in changes:
        index.extend(range(cursor, start))
        index.extend([start] * size)
        cursor = end
    index.extend(range(cursor, length))
    return index


def normalised_view(text: str) -> tuple[str, list[int] | None]:
    """(view, index) where ``index[i]`` is the original offset of ``view[i]``; None = the same offsets.

    Only non-ASCII characters are looked at one by one; the ASCII between them is copied.
    """
    if text.isascii():
        return text, None
    return rewritten(text, NON_ASCII, _fold) or (text, None)


def to_original(index: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) range of the view back to the original text."""
    if index is None:
        return start, end
    return index[start], index[end - 1] + 1
