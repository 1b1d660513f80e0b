"""Detected spans and the overlap rule applied before any substitution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A detected value: ``text[start:end]`` is of ``entity_type`` with ``score``."""

    start: int
    end: int
    entity_type: str
    score: float

    @property
    def length(self) -> int:
        return self.end - self.start


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Merge overlapping spans into one span covering their union.

    Detections overlap (a URL inside an e-mail address, a date inside a card number). Taking the
    union never leaves a piece of a detected value in the text; the merged span takes the type of
    its strongest member (highest score, then longest), so ``x@y.com`` stays an e-mail address.
    """
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = max((last, span), key=lambda s: (s.score, s.length))
            merged[-1] = Span(last.start, max(last.end, span.end), best.entity_type, best.score)
        else:
            merged.append(span)
    return merged
