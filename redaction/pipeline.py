"""Sanitise a parsed request body: collect its texts, detect, substitute, write back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redaction.errors import DetectorUnavailable, RedactionError, UninspectableContent
from redaction.placeholders import PlaceholderMap, placeholders_in
from redaction.pseudonymize import Pseudonymizer, TermLists
from redaction.spans import Span
from redaction.walker import WalkRules, collect_text_fields


class SpanDetector(Protocol):
    async def analyze(self, texts: Sequence[str]) -> list[list[Span]]: ...


@dataclass
class Redaction:
    """The outcome for one request: the sanitised body and what it takes to undo it."""

    body: Any
    mapping: PlaceholderMap
    detection_seconds: float

    @property
    def entity_counts(self) -> dict[str, int]:
        return self.mapping.entity_counts()


class Redactor:
    """Everything the request side does to a body, independent of HTTP."""

    def __init__(
        self, detector: SpanDetector, terms: TermLists | None = None, *, block_uninspectable: bool = True
    ) -> None:
        self.detector = detector
        self.pseudonymizer = Pseudonymizer(terms or TermLists())
        self.block_uninspectable = block_uninspectable

    async def redact(self, body: Any, rules: WalkRules) -> Redaction:
        """Sanitise ``body`` in place. Raises a ``RedactionError`` instead of returning raw text."""
        started = time.perf_counter()
        try:
            fields = collect_text_fields(body, rules, block_uninspectable=self.block_uninspectable)
            mapping = PlaceholderMap(reserved=placeholders_in(fields.texts))
            spans = await self.detector.analyze(fields.texts)
            fields.write_back(self.pseudonymizer.apply(fields.texts, spans, mapping))
        except RedactionError:
            raise
        except RecursionError:
            raise UninspectableContent("the request is nested too deeply to inspect") from None
        except Exception as exc:
            raise DetectorUnavailable(f"detection failed ({type(exc).__name__})") from None
        return Redaction(body, mapping, time.perf_counter() - started)
