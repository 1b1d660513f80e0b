"""Where the answer guard's digit and IBAN patterns can match, found without regex scans.

Python's ``re`` spends ~25 ns on every position of a text it scans for a pattern without a literal
start (``\\d``, ``[A-Z]{2}\\d{2}``): ~70 us for the digit groups and IBAN starts of a 1 KB answer.
A view is instead classified character by character with ``bytes.translate`` (ASCII digit,
capital letter, other) and searched on that mask, where the searches start with a literal byte
and run at C speed: ~6 us. A view with digits of another script (``\\d`` matches them too, the
mask cannot see them) is scanned with the regexes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from redaction.normalize import non_ascii_chars

# digit runs with at most four other characters between them (more than any pattern allows
# between two digits of one value): one value never spans two such groups
_DIGIT_GROUP = re.compile(r"\d+(?:\D{1,4}\d+)*")
_NOT_DIGIT = re.compile(r"\D+")
# every IBAN match begins here (two such starts never overlap: letters, then digits)
_IBAN_START = re.compile(r"[A-Z]{2}\d{2}")

_DIGIT, _CAPITAL, _OTHER = b"1", b"A", b"0"
_CLASSES = bytes((_DIGIT if 0x30 <= b <= 0x39 else _CAPITAL if 0x41 <= b <= 0x5A else _OTHER)[0] for b in range(256))
_MASK_DIGIT_GROUP = re.compile(rb"1(?:[01A]{0,4}1)*")  # _DIGIT_GROUP on the mask
_MASK_IBAN_START = b"AA11"  # _IBAN_START on the mask


def _classes(view: str) -> bytes | None:
    """The view's mask (a byte per character), or None if it has digits of another script."""
    if view.isascii():
        return view.encode("ascii").translate(_CLASSES)
    if any(char.isdecimal() for char in non_ascii_chars(view)):
        return None
    return view.encode("ascii", "replace").translate(_CLASSES)  # "?" (other) per non-ASCII character


class DigitGroup(NamedTuple):
    pos: int  # one character before the first digit ("+" or "(" of a phone number)
    endpos: int  # two after the last: the patterns' lookaheads read them
    digits: int


class MatchSites:
    """The digit groups and IBAN starts of one view, each found once (on first use)."""

    __slots__ = ("_fewest", "_groups", "_mask", "_view")

    def __init__(self, view: str, fewest_digits: int = 1) -> None:
        """``fewest_digits``: smaller groups are left out (no value of any type is that short)."""
        self._view = view
        self._fewest = fewest_digits
        self._mask = _classes(view)
        self._groups: list[DigitGroup] | None = None

    def digit_groups(self) -> list[DigitGroup]:
        """Each group of digit runs, with where a pattern may read and its digit count."""
        if self._groups is None:
            if self._mask is not None:
                mask = self._mask
                spans = ((m.start(), m.end()) for m in _MASK_DIGIT_GROUP.finditer(mask))
                found = [(start, end, mask.count(_DIGIT, start, end)) for start, end in spans]
            else:
                groups = _DIGIT_GROUP.finditer(self._view)
                found = [(m.start(), m.end(), len(_NOT_DIGIT.sub("", m.group(0)))) for m in groups]
            size, fewest = len(self._view), self._fewest
            self._groups = [
                DigitGroup(max(0, start - 1), min(size, end + 2), digits)
                for start, end, digits in found
                if digits >= fewest
            ]
        return self._groups

    def iban_starts(self) -> list[int]:
        """Offsets where ``[A-Z]{2}\\d{2}`` matches, left to right, never overlapping."""
        if self._mask is None:
            return [m.start() for m in _IBAN_START.finditer(self._view)]
        starts, at = [], self._mask.find(_MASK_IBAN_START)
        while at != -1:
            starts.append(at)
            at = self._mask.find(_MASK_IBAN_START, at + len(_MASK_IBAN_START))
        return starts
