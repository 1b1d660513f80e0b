"""One request's journey through the proxy, carried from stage to stage (like mitmproxy's flow)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redaction import PlaceholderMap
from storage import ExchangeRecord, new_record_id


@dataclass
class Exchange:
    endpoint: str
    id: str = field(default_factory=new_record_id)
    started: float = field(default_factory=time.perf_counter)
    client_id: str = "unknown"
    model: str | None = None
    upstream_name: str | None = None
    stream: bool = False
    status: int = 0
    outcome: str = "ok"
    log_it: bool = True
    training_consent: bool = True
    # content never appears in a repr (an asyncio callback error or a traceback prints reprs)
    original_request: bytes | None = field(default=None, repr=False)
    sanitized_request: bytes | None = field(default=None, repr=False)
    response: bytes | None = field(default=None, repr=False)
    mapping: PlaceholderMap | None = field(default=None, repr=False)
    detection_seconds: float | None = None
    upstream_started: float | None = None
    upstream_finished: float | None = None

    def fail(self, status: int, outcome: str) -> None:
        self.status, self.outcome = status, outcome

    def summary(self) -> str:
        """One log line about the exchange: ids, status, timings, entity counts; never content."""
        detection = "-" if self.detection_seconds is None else f"{self.detection_seconds * 1000:.1f}"
        entities = ",".join(
            f"{k}={v}" for k, v in sorted((self.mapping.entity_counts() if self.mapping else {}).items())
        )
        return (
            f"exchange {self.id} client={self.client_id} {self.endpoint} upstream={self.upstream_name or '-'} "
            f"stream={self.stream} status={self.status} "
            f"outcome={self.outcome} total_ms={(time.perf_counter() - self.started) * 1000:.1f} "
            f"detection_ms={detection} entities={entities or '-'}"
        )

    def log_fields(self) -> dict[str, object]:
        """The summary as structured fields (JSON logs): ids, status, timings, counts; never content."""
        return {
            "request_id": self.id,
            "client": self.client_id,
            "endpoint": self.endpoint,
            "upstream": self.upstream_name,
            "stream": self.stream,
            "status": self.status,
            "outcome": self.outcome,
            "total_ms": round((time.perf_counter() - self.started) * 1000, 1),
            "detection_ms": None if self.detection_seconds is None else round(self.detection_seconds * 1000, 1),
            "entities": self.mapping.entity_counts() if self.mapping else {},
        }

    def to_record(self) -> ExchangeRecord:
        upstream_ms = None
        if self.upstream_started is not None:
            upstream_ms = ((self.upstream_finished or time.perf_counter()) - self.upstream_started) * 1000
        return ExchangeRecord(
            id=self.id,
            client_id=self.client_id,
            endpoint=self.endpoint,
            model=self.model,
            stream=self.stream,
            status=self.status,
            outcome=self.outcome,
            latency_total_ms=(time.perf_counter() - self.started) * 1000,
            latency_detection_ms=None if self.detection_seconds is None else self.detection_seconds * 1000,
            latency_upstream_ms=upstream_ms,
            entity_counts=self.mapping.entity_counts() if self.mapping else {},
            original_request=self.original_request,
            sanitized_request=self.sanitized_request,
            response=self.response,
            mapping=self.mapping.to_dict() if self.mapping else None,
            training_consent=self.training_consent,
        )
