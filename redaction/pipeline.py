"""Sanitise a parsed request body: collect its texts, detect, substitute, write back."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redaction.errors import DetectorUnavailable, RedactionError, TooMuchText, UninspectableContent
from redaction.jsonio import dumps as json_bytes
from redaction.placeholders import PlaceholderMap, PlaceholderStore, placeholders_in
from redaction.pseudonymize import Pseudonymizer, TermLists, leftover_values
from redaction.response_guard import structured_spans
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
    # the request's headers that go upstream, sanitised (body values and structured values replaced)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def entity_counts(self) -> dict[str, int]:
        return self.mapping.entity_counts()

    def sanitized_bytes(self) -> bytes:
        """The body to forward, after a last check that no detected value is left anywhere in it.

        Values are replaced where the walker can rewrite them; a value that also sits where it
        cannot (an id, a role, a function name, an identifier-like key) must not go out.
        """
        data = json_bytes(self.body)
        outgoing = "\n".join([data.decode(), *self.headers.values()])
        if leftover_values(outgoing, self.mapping):
            raise UninspectableContent(
                "a detected personal value also appears in a field the proxy does not rewrite "
                "(an id, role, name or object key)"
            )
        return data


class Redactor:
    """Everything the request side does to a body, independent of HTTP."""

    def __init__(
        self,
        detector: SpanDetector,
        terms: TermLists | None = None,
        *,
        block_uninspectable: bool = True,
        max_chars: int | None = None,
    ) -> None:
        self.detector = detector
        self.pseudonymizer = Pseudonymizer(terms or TermLists())
        self.block_uninspectable = block_uninspectable
        self.max_chars = max_chars

    async def redact(
        self,
        body: Any,
        rules: WalkRules,
        store: PlaceholderStore | None = None,
        continues: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Redaction:
        """Sanitise ``body`` in place. Raises a ``RedactionError`` instead of returning raw text.

        ``headers``: header values that go upstream with the body (a user agent or idempotency key
        can hold an address): returned sanitised. They are not given to the detector (its NER
        reads "Anthropic/Python 0.40" as a person, and rewriting SDK headers breaks calls): values
        found in the body are replaced there too, and structured values (addresses, phone and
        card numbers...) are found by the response guard's validated patterns.

        ``store``: the client's placeholders across requests; None for placeholders of this request only.
        ``continues``: the id of an earlier answer this request continues, whose placeholders may be
        restored in this answer too (Responses ``previous_response_id``).
        """
        started = time.perf_counter()
        try:
            fields = collect_text_fields(body, rules, block_uninspectable=self.block_uninspectable)
            header_names, header_values = list(headers or {}), list((headers or {}).values())
            texts = [*fields.texts, *header_values]
            if self.max_chars is not None and sum(map(len, texts)) > self.max_chars:
                raise TooMuchText(f"the request holds more than {self.max_chars} characters of text to inspect")
            mapping = PlaceholderMap(reserved=placeholders_in(texts), store=store, continues=continues)
            spans = await self.detector.analyze(fields.texts)
            spans += [structured_spans(value) for value in header_values]
            forwarded = self.pseudonymizer.apply(texts, spans, mapping)
            fields.write_back(forwarded[: len(fields.texts)])
            mapping.forwarded_texts = forwarded
            sanitized_headers = dict(zip(header_names, forwarded[len(fields.texts) :], strict=True))
        except RedactionError:
            raise
        except RecursionError:
            raise UninspectableContent("the request is nested too deeply to inspect") from None
        except Exception as exc:
            raise DetectorUnavailable(f"detection failed ({type(exc).__name__})") from None
        return Redaction(body, mapping, time.perf_counter() - started, sanitized_headers)
