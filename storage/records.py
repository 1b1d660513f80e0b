"""An exchange as the proxy sees it (plaintext, in memory) and its sealed database row."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.crypto import Keyring, associated_data
from storage.models import ENCRYPTED_COLUMNS, ExchangeRow


def new_record_id() -> str:
    """32 hex characters, time-ordered (48-bit milliseconds + 80 random bits), like a UUIDv7."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


@dataclass
class ExchangeRecord:
    """Everything logged about one exchange. Payload fields hold plaintext: memory only."""

    id: str
    client_id: str
    endpoint: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    model: str | None = None
    stream: bool = False
    status: int = 0
    outcome: str = "ok"
    latency_total_ms: float = 0.0
    latency_detection_ms: float | None = None
    latency_upstream_ms: float | None = None
    entity_counts: dict[str, int] = field(default_factory=dict)
    original_request: bytes | None = None
    sanitized_request: bytes | None = None
    response: bytes | None = None
    mapping: dict[str, Any] | None = None

    def payload_size(self) -> int:
        """Approximate memory held by this record's payloads (bounds the write queue)."""
        sizes = (len(p) for p in (self.original_request, self.sanitized_request, self.response) if p)
        return sum(sizes) + 64 * len(self.mapping or ())

    def payloads(self) -> dict[str, bytes | None]:
        mapping = None if self.mapping is None else json.dumps(self.mapping, ensure_ascii=False).encode()
        return {
            "original_request": self.original_request,
            "sanitized_request": self.sanitized_request,
            "response": self.response,
            "mapping": mapping,
        }


def seal(record: ExchangeRecord, keyring: Keyring) -> ExchangeRow:
    """The database row: metadata in clear, each payload encrypted and bound to (row, column)."""
    sealed = {
        column: None
        if plaintext is None
        else keyring.encrypt(plaintext, associated_data("exchanges", record.id, column))
        for column, plaintext in record.payloads().items()
    }
    return ExchangeRow(
        id=record.id,
        created_at=record.created_at,
        client_id=record.client_id,
        endpoint=record.endpoint,
        model=record.model,
        stream=record.stream,
        status=record.status,
        outcome=record.outcome,
        latency_total_ms=record.latency_total_ms,
        latency_detection_ms=record.latency_detection_ms,
        latency_upstream_ms=record.latency_upstream_ms,
        entity_counts=record.entity_counts,
        key_id=keyring.active_id,
        **sealed,
    )


def unseal(row: ExchangeRow, keyring: Keyring) -> ExchangeRecord:
    """Decrypt a row. Raises ``DecryptionFailed``/``UnknownKey`` rather than return garbage."""
    plain: dict[str, bytes | None] = {}
    for column in ENCRYPTED_COLUMNS:
        blob = getattr(row, column)
        plain[column] = (
            None if blob is None else keyring.decrypt(row.key_id, blob, associated_data("exchanges", row.id, column))
        )
    mapping = plain.pop("mapping")
    return ExchangeRecord(
        id=row.id,
        client_id=row.client_id,
        endpoint=row.endpoint,
        created_at=row.created_at,
        model=row.model,
        stream=row.stream,
        status=row.status,
        outcome=row.outcome,
        latency_total_ms=row.latency_total_ms,
        latency_detection_ms=row.latency_detection_ms,
        latency_upstream_ms=row.latency_upstream_ms,
        entity_counts=dict(row.entity_counts or {}),
        mapping=None if mapping is None else json.loads(mapping),
        **plain,
    )
