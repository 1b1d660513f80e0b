"""An exchange as the proxy sees it (plaintext, in memory) and its sealed database row."""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.chain import payload_digest
from storage.crypto import KeyError_, Keyring, aead_decrypt, aead_encrypt, associated_data
from storage.envelope import KeyAccess, new_data_key
from storage.models import ENCRYPTED_COLUMNS, ExchangeRow


class RecordErased(KeyError_):
    """The record's data key was destroyed (erasure or retention): its payloads are gone."""


_id_lock = threading.Lock()
_id_clock = [0, 0]  # the last id's milliseconds and counter


def new_record_id() -> str:
    """32 hex characters, time-ordered like a UUIDv7: 48-bit milliseconds, a 16-bit counter that
    orders the ids one process makes within a millisecond (records of fast exchanges list in the
    order they happened), 64 random bits."""
    with _id_lock:
        now = time.time_ns() // 1_000_000
        if now > _id_clock[0]:
            _id_clock[0], _id_clock[1] = now, secrets.randbelow(1 << 14)  # room to count up
        elif _id_clock[1] < 0xFFFF:
            _id_clock[1] += 1
        else:  # 49,152+ ids in one millisecond: borrow the next one
            _id_clock[0], _id_clock[1] = _id_clock[0] + 1, 0
        millis, counter = _id_clock
    return f"{millis:012x}{counter:04x}{secrets.token_hex(8)}"


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
    # content never appears in a repr (an asyncio callback error or a traceback prints reprs)
    original_request: bytes | None = field(default=None, repr=False)
    sanitized_request: bytes | None = field(default=None, repr=False)
    response: bytes | None = field(default=None, repr=False)
    mapping: dict[str, Any] | None = field(default=None, repr=False)
    kind: str = "exchange"
    training_consent: bool = True
    target: str | None = None

    def payload_size(self) -> int:
        """Approximate memory held by this record's payloads (bounds the write queue)."""
        sizes = (len(p) for p in (self.original_request, self.sanitized_request, self.response) if p)
        return sum(sizes) + 64 * len(self.mapping or ())

    def payloads(self) -> dict[str, bytes | None]:
        mapping = None if self.mapping is None else _mapping_json(self.mapping)
        return {
            "original_request": self.original_request,
            "sanitized_request": self.sanitized_request,
            "response": self.response,
            "mapping": mapping,
        }


def _mapping_json(mapping: dict[str, Any]) -> bytes:
    """UTF-8 JSON; a value holding a lone surrogate (legal in a request's JSON escape, not in
    UTF-8) is written as an escape instead of failing the whole record."""
    try:
        return json.dumps(mapping, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(mapping).encode()


def _aad(record_id: str, column: str) -> bytes:
    return associated_data("exchanges", record_id, column)


def _access(keys: KeyAccess | Keyring) -> KeyAccess:
    return keys if isinstance(keys, KeyAccess) else KeyAccess(keys)


def seal_values(record: ExchangeRecord, keys: KeyAccess | Keyring) -> dict[str, Any]:
    """The database row as plain column values (the writer inserts these without ORM objects):
    metadata in clear, each payload encrypted with the record's own data key and bound to (row,
    column), the data key wrapped by the active master key (or sealed to the auditor). The chain
    fields are the writer's to fill in."""
    data_key = new_data_key()
    key_id, wrapped = _access(keys).wrap(data_key, record.id)
    values: dict[str, Any] = {
        "id": record.id,
        "kind": record.kind,
        "created_at": record.created_at.astimezone(UTC),  # as the database returns it: the chain digest matches
        "client_id": record.client_id,
        "endpoint": record.endpoint,
        "model": record.model,
        "stream": record.stream,
        "status": record.status,
        "outcome": record.outcome,
        "latency_total_ms": float(record.latency_total_ms),
        "latency_detection_ms": record.latency_detection_ms,
        "latency_upstream_ms": record.latency_upstream_ms,
        "entity_counts": record.entity_counts,
        "training_consent": record.training_consent,
        "target": record.target,
        "key_id": key_id,
        "wrapped_key": wrapped,
        "erased_at": None,
        "payload_purged_at": None,
        "writer_id": "",
        "seq": 0,
        "chain_hash": b"",
    }
    cipher = AESGCM(data_key)
    for column, plaintext in record.payloads().items():
        values[column] = None if plaintext is None else aead_encrypt(cipher, plaintext, _aad(record.id, column))
    values["payload_digest"] = payload_digest(SimpleNamespace(**values))  # type: ignore[arg-type]
    return values


def seal(record: ExchangeRecord, keys: KeyAccess | Keyring) -> ExchangeRow:
    """``seal_values`` as an ORM row (tests, tools)."""
    return ExchangeRow(**seal_values(record, keys))


def unseal(row: ExchangeRow, keys: KeyAccess | Keyring) -> ExchangeRecord:
    """Decrypt a row. Raises ``RecordErased``, ``UnknownKey`` or ``DecryptionFailed`` rather than
    return garbage."""
    erased_or_purged = row.erased_at is not None or row.payload_purged_at is not None
    if erased_or_purged or row.wrapped_key is None or row.key_id is None:
        raise RecordErased(f"record {row.id} was erased or its payloads purged")
    cipher = AESGCM(_access(keys).unwrap(row.key_id, row.wrapped_key, row.id))
    plain: dict[str, bytes | None] = {}
    for column in ENCRYPTED_COLUMNS:
        blob = getattr(row, column)
        plain[column] = None if blob is None else aead_decrypt(cipher, blob, _aad(row.id, column))
    mapping = plain.pop("mapping")
    return ExchangeRecord(
        id=row.id,
        kind=row.kind,
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
        training_consent=row.training_consent,
        target=row.target,
        mapping=None if mapping is None else json.loads(mapping),
        **plain,
    )
