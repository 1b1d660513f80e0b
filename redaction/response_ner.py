"""Names, places and other types only the detector finds, in answers: the costly half of the guard.

Structured values (e-mail, phone, card...) are matched by patterns in-process. A type such as
PERSON or LOCATION needs the NER model, i.e. a round trip to a detector worker for every piece of
answer text checked (a few milliseconds per sentence). The detector judges a name by its
sentence, so in a stream the guard holds text back until its sentence ends, and never more than
``NER_MAX_HOLD`` characters: that hold is the delay these types add to a stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redaction.placeholders import PLACEHOLDER_RE, WORD_RE, normalise_value
from redaction.pseudonymize import TermLists
from redaction.spans import Span

# Longest text held back waiting for the end of its sentence, in characters of the answer.
NER_MAX_HOLD = 300
# a sentence ends at . ! ? ; : (after closing quotes or markdown) followed by whitespace, or at a newline
# (not after an initial or a title: "Dr. Jane A. Roe" is one name, judged in one piece)
_SENTENCE_END = re.compile(
    r"(?<!\b[A-Z])(?<!\bMr)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bMrs)(?<!\bProf)"
    r"[.!?;:\u2026][\"')\]*_`]*\s+|\n\s*"
)
_LAST_WHITESPACE = re.compile(r"\s(?=\S*$)")

Detect = Callable[[str], Sequence[Span]]


class BlockingAnalyzer(Protocol):
    def analyze_blocking(self, texts: Sequence[str]) -> list[list[Span]]: ...


@dataclass(frozen=True)
class ResponseDetector:
    """The detector as the response guard calls it: one text, blocking, the allow list applied.

    It blocks its thread until a detector worker answers, so streams that use it are restored
    in a worker thread (see ``proxy.stream_relay``), never on the event loop.
    """

    pool: BlockingAnalyzer
    terms: TermLists = field(default_factory=TermLists)

    def __call__(self, text: str) -> list[Span]:
        spans = self.pool.analyze_blocking([text])[0]
        return [s for s in spans if normalise_value(text[s.start : s.end]) not in self.terms.allow]


def sentence_cut(text: str) -> int:
    """Where the tail still waiting for the end of its sentence begins (at most NER_MAX_HOLD back)."""
    cut = 0
    for match in _SENTENCE_END.finditer(text):
        cut = match.end()
    if len(text) - cut > NER_MAX_HOLD:
        # a sentence this long: cut before its last word rather than hold more
        last_space = _LAST_WHITESPACE.search(text, cut)
        cut = last_space.end() if last_space is not None else cut
    return max(cut, len(text) - NER_MAX_HOLD)


def ner_findings(
    view: str, types: Iterable[str], detect: Detect, allowed: Iterable[str]
) -> Iterator[tuple[int, int, str]]:
    """(start, end, type) in ``view`` of every detected value of ``types`` the caller did not send.

    Placeholders are the caller's own values: a span overlapping one is cut down to the part
    outside it. A value made only of words of the caller's values (``Jane`` for ``Jane Roe``)
    is the caller's own too.
    """
    wanted = set(types)
    caller_words = {word.casefold() for value in allowed for word in WORD_RE.findall(value)}
    placeholders = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(view)]
    for span in detect(view):
        if span.entity_type not in wanted:
            continue
        for start, end in _outside(span.start, span.end, placeholders):
            words = {word.casefold() for word in WORD_RE.findall(view[start:end])}
            if words and not words <= caller_words:
                yield start, end, span.entity_type


def _outside(start: int, end: int, holes: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The parts of [start, end) not covered by ``holes`` (sorted, disjoint)."""
    for hole_start, hole_end in holes:
        if hole_end <= start or hole_start >= end:
            continue
        if hole_start > start:
            yield start, hole_start
        start = max(start, hole_end)
    if start < end:
        yield start, end
