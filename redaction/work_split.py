"""Detection work, planned: what is already known, and how the rest is shared among workers.

- A conversation resends its history on every turn; each text's spans are remembered under a
  keyed hash (a random key per process, so no key outlives it or can be matched to a text), in
  a bounded LRU: earlier messages are never analysed twice.
- A long text analysed by one worker leaves the others idle; cut into overlapping pieces at
  whitespace, it is analysed by every idle worker at once and the spans are merged (a value cut
  by a piece boundary is whole in the next piece, which starts ``OVERLAP`` characters earlier).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redaction.spans import Span

OVERLAP = 120  # characters shared by neighbouring pieces: longer than any value
MIN_PIECE = 500  # smaller pieces cost more in overhead than they save


class SpanCache:
    """Spans per text, keyed by BLAKE2b with a per-process random key; at most ``max_entries``."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: OrderedDict[bytes, tuple[Span, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._key, digest_size=16).digest()

    def get(self, key: bytes) -> tuple[Span, ...] | None:
        spans = self._entries.get(key)
        if spans is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return spans

    def put(self, key: bytes, spans: Sequence[Span]) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = tuple(spans)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Piece:
    text_index: int
    offset: int
    text: str


@dataclass
class Plan:
    """Jobs (lists of pieces) for the workers, and how to put their spans back together."""

    jobs: list[list[Piece]] = field(default_factory=list)

    def merge(self, results: list[list[list[Span]]], count: int) -> list[list[Span]]:
        merged: list[set[Span]] = [set() for _ in range(count)]
        for job, job_results in zip(self.jobs, results, strict=True):
            for piece, spans in zip(job, job_results, strict=True):
                merged[piece.text_index].update(
                    Span(s.start + piece.offset, s.end + piece.offset, s.entity_type, s.score) for s in spans
                )
        return [sorted(spans, key=lambda s: (s.start, s.end, s.entity_type)) for spans in merged]


def _boundary(text: str, low: int, high: int) -> int | None:
    """A cut point in [low, high]: after a sentence end if there is one, else at a space; None
    when there is no whitespace at all there (minified JSON, a long URL: not cut)."""
    low = max(0, low)
    for mark in (". ", "\n", " "):
        found = text.rfind(mark, low, high)
        if found > low:
            return found + len(mark)
    return None


def _cut(text: str, parts: int) -> list[tuple[int, str]]:
    """``text`` in about ``parts`` pieces cut between sentences, each starting at least OVERLAP
    characters before the previous piece ends (at a sentence start, so NER sees whole sentences).
    Where there is no whitespace to cut at, the rest of the text stays in one piece."""
    size = max(MIN_PIECE, len(text) // parts)
    pieces, start = [], 0
    while start < len(text):
        last = len(text) - start <= size + MIN_PIECE // 2
        end = len(text) if last else _boundary(text, start + size // 2, start + size)
        begin = _boundary(text, start - 3 * OVERLAP, start - OVERLAP) if start else 0
        if begin is None:  # no sentence or space to start at: begin a full overlap earlier
            begin = max(0, start - 3 * OVERLAP)
        end = len(text) if end is None else end
        pieces.append((begin, text[begin:end]))
        start = end
    return pieces


def plan(texts: Sequence[str], workers: int) -> Plan:
    """Share ``texts`` among ``workers`` jobs of about equal length (one job if that is all)."""
    total = sum(len(t) for t in texts)
    if workers <= 1 or total < 2 * MIN_PIECE:
        return Plan([[Piece(i, 0, t) for i, t in enumerate(texts)]])
    target = total / workers
    pieces: list[Piece] = []
    for index, text in enumerate(texts):
        parts = round(len(text) / target) if len(text) > target else 1
        pieces += (
            [Piece(index, offset, piece) for offset, piece in _cut(text, parts)]
            if parts > 1
            else [Piece(index, 0, text)]
        )
    jobs: list[list[Piece]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for piece in sorted(pieces, key=lambda p: -len(p.text)):  # longest first onto the lightest job
        lightest = loads.index(min(loads))
        jobs[lightest].append(piece)
        loads[lightest] += len(piece.text)
    return Plan([job for job in jobs if job])
