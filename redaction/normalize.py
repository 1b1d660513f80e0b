"""What the detector reads: text with the disguises of copy-paste and tokenizers undone.

Non-breaking and other Unicode spaces become plain spaces, zero-width and other format
characters are dropped, and full-width or compatibility forms are folded (NFKC), so that
``4111\u00a01111...`` or ``jane\u200b.roe@example.com`` are seen as what they are. Offsets found
in the normalised view map back to the original text, which is what gets replaced.
"""

from __future__ import annotations

import unicodedata

LINE_SEPARATORS = frozenset("\u2028\u2029\u0085")


def normalised_view(text: str) -> tuple[str, list[int] | None]:
    """(view, index) where ``index[i]`` is the original offset of ``view[i]``; None = identical."""
    if text.isascii():
        return text, None
    out: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cf":
            continue  # zero-width space/joiners, soft hyphen, bidi controls
        if category == "Zs" or char in LINE_SEPARATORS:
            folded = " "
        elif char.isascii():
            folded = char
        else:
            folded = unicodedata.normalize("NFKC", char)
        out.extend(folded)
        index.extend([position] * len(folded))
    return "".join(out), index


def to_original(index: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Map a [start, end) range of the view back to the original text."""
    if index is None:
        return start, end
    return index[start], index[end - 1] + 1
