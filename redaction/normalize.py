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
_ASCII_BYTES = bytes(range(128))


def non_ascii_chars(text: str) -> set[str]:
    """The distinct non-ASCII characters of ``text``: its UTF-8 without the ASCII bytes, decoded
    (~4 us per KB; ``set(NON_ASCII.findall(text))`` takes ~11). Lone surrogates included."""
    return set(text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))


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
    if (view := folded_in_place(text, _fold)) is not None:
        return view, None
    return rewritten(text, NON_ASCII, _fold) or (text, None)


def folded_in_place(text: str, fold: Callable[[str], str]) -> str | None:
    """``text`` with each distinct non-ASCII character replaced by ``fold(char)``, when every
    reading is one character (curly quotes, dashes, accented letters: most texts), so offsets
    stay; None otherwise. A few ``str.replace`` calls instead of a visit per non-ASCII character
    (~30 us per KB of prose with a dash and an apostrophe)."""
    changes = {char: folded for char in non_ascii_chars(text) if (folded := fold(char)) != char}
    if any(len(folded) != 1 or folded in changes for folded in changes.values()):
        return None  # a character dropped or read as several, or a reading another one would change
    for char, folded in changes.items():
        text = text.replace(char, folded)
    return text


def to_original(index: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) range of the view back to the original text."""
    if index is None:
        return start, end
    return index[start], index[end - 1] + 1
