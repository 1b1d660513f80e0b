"""Turn detected spans into placeholders, consistently across every text of a request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from redaction.placeholders import WORD_RE, PlaceholderMap, normalise_value
from redaction.spans import Span, resolve_overlaps

DENY_LIST_ENTITY = "SENSITIVE_TERM"
# Values shorter than this are replaced where the detector found them, but are not hunted
# for elsewhere in the request (a two-letter name would otherwise eat parts of other words).
MIN_PROPAGATED_LENGTH = 3


def _term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive, word-bounded alternation; whitespace inside a term matches any run."""
    escaped = sorted(
        {r"\s+".join(re.escape(word) for word in term.split()) for term in terms if term.strip()},
        key=len,
        reverse=True,
    )
    if not escaped:
        return None
    # bounded by anything but a letter or digit: "mail_jane.roe@example.com" contains the address
    return re.compile(r"(?<![^\W_])(?:" + "|".join(escaped) + r")(?![^\W_])", re.IGNORECASE)


@dataclass(frozen=True)
class TermLists:
    """The operator's allow list (never redacted) and deny list (always redacted)."""

    allow: frozenset[str] = frozenset()
    deny_pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> TermLists:
        return cls(frozenset(normalise_value(term) for term in allow), _term_pattern(deny))


@dataclass
class Pseudonymizer:
    """Replaces every detected value, and every other occurrence of it, by its placeholder."""

    terms: TermLists = field(default_factory=TermLists)

    def _own_spans(self, text: str, spans: Sequence[Span]) -> list[Span]:
        kept = [s for s in spans if normalise_value(text[s.start : s.end]) not in self.terms.allow]
        if self.terms.deny_pattern is not None:
            kept += [Span(m.start(), m.end(), DENY_LIST_ENTITY, 1.0) for m in self.terms.deny_pattern.finditer(text)]
        return resolve_overlaps(kept)

    def apply(
        self, texts: Sequence[str], spans_per_text: Sequence[Sequence[Span]], mapping: PlaceholderMap
    ) -> list[str]:
        """Sanitised copies of ``texts``; ``mapping`` gains every value replaced."""
        own = [self._own_spans(text, spans) for text, spans in zip(texts, spans_per_text, strict=True)]
        types: dict[str, str] = {}
        for text, spans in zip(texts, own, strict=True):
            for span in spans:
                value = text[span.start : span.end]
                mapping.placeholder_for(value, span.entity_type)
                types.setdefault(normalise_value(value), span.entity_type)

        # A value found once is replaced everywhere: the detector may miss the same name in a
        # context that gives it fewer clues (a bare "name" field, a tool argument).
        result = []
        for text, spans in zip(texts, own, strict=True):
            extra = [
                Span(start, end, types.get(normalise_value(text[start:end]), DENY_LIST_ENTITY), 0.0)
                for start, end in _known_value_occurrences(text, mapping)
            ]
            if extra:
                spans = resolve_overlaps([*spans, *extra])
            result.append(_splice(text, spans, mapping))
        return result


def _splice(text: str, spans: Sequence[Span], mapping: PlaceholderMap) -> str:
    """Replace non-overlapping, sorted ``spans`` of ``text`` by placeholders."""
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(mapping.placeholder_for(text[span.start : span.end], span.entity_type))
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


@lru_cache(maxsize=65_536)
def _value_pattern(value: str) -> tuple[re.Pattern[str], int]:
    """(pattern, lead): the value word-bounded, case-insensitive, any whitespace run; ``lead`` is
    how many characters come before its first word (``+`` of ``+1 212 ...``)."""
    pattern = _term_pattern([value])
    assert pattern is not None
    match = WORD_RE.search(value)
    return pattern, match.start() if match else 0


def _known_value_occurrences(text: str, mapping: PlaceholderMap) -> list[tuple[int, int]]:
    """Where known values occur in ``text``: each word is looked up, so the cost does not grow
    with the number of values a client has sent (a regex over all of them would)."""
    first_words = mapping.known_first_words()
    if not first_words or first_words.isdisjoint(w.casefold() for w in WORD_RE.findall(text)):
        return []  # the usual case, decided in one pass: no word of the text starts a known value
    found = []
    for word in WORD_RE.finditer(text):
        if word.group(0).casefold() not in first_words:
            continue
        for value in mapping.values_starting_with(word.group(0).casefold()):
            if len(value.strip()) < MIN_PROPAGATED_LENGTH:
                continue
            pattern, lead = _value_pattern(value)
            if word.start() >= lead and (match := pattern.match(text, word.start() - lead)):
                found.append((match.start(), match.end()))
    return found


def _escaped_forms_pattern(values: list[str]) -> re.Pattern[str] | None:
    forms = set()
    for value in values:
        if len(value.strip()) >= MIN_PROPAGATED_LENGTH:
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
            forms.add(json.dumps(value)[1:-1])
    return _term_pattern(forms)


def leftover_values(serialized_json: str, mapping: PlaceholderMap) -> bool:
    """True when a value of this request still occurs in ``serialized_json`` (JSON-escaped forms).

    Only this request's values: a word detected in some earlier request (a product name taken
    for a person, say) must not block every later request that names it in a structural field.
    """
    pattern = _escaped_forms_pattern(mapping.request_values())
    return pattern is not None and pattern.search(serialized_json) is not None
