"""Tamper evidence: each writer's rows form a MAC chain.

A row's link is ``HMAC(chain_key, previous link || metadata digest || payload digest)``. Editing
metadata or a ciphertext changes a digest; deleting or reordering rows breaks the sequence or
the links; a deleted tail no longer matches the head stored in ``chains``. The key lives in the
database wrapped by a master key, so someone who can write the database but holds no master key
cannot recompute the chain. Erasure and retention drop ciphertexts but keep ``payload_digest``,
so the chain still verifies after them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from storage.models import ENCRYPTED_COLUMNS, ChainRow, ExchangeRow

GENESIS = bytes(32)
_METADATA_FIELDS = (
    "id", "kind", "client_id", "endpoint", "model", "stream", "status", "outcome", "latency_total_ms",
    "latency_detection_ms", "latency_upstream_ms", "training_consent", "target", "writer_id", "seq",
)  # fmt: skip


# what json.dumps(fields, sort_keys=True, separators=(",", ":")) writes, without building an encoder
# per call (these digests are in every stored chain: the bytes must never change)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def metadata_digest(row: ExchangeRow) -> bytes:
    fields: dict[str, Any] = {name: getattr(row, name) for name in _METADATA_FIELDS}
    fields["created_at"] = row.created_at.isoformat(timespec="microseconds")
    fields["entity_counts"] = dict(sorted((row.entity_counts or {}).items()))
    canonical = _CANONICAL.encode(fields)
    return hashlib.sha256(canonical.encode()).digest()


def payload_digest(row: ExchangeRow) -> bytes:
    digest = hashlib.sha256(b"privacy-proxy payloads v1")
    for column in ENCRYPTED_COLUMNS:
        blob = getattr(row, column)
        digest.update(column.encode() + b"\x00")
        digest.update(b"-" if blob is None else len(blob).to_bytes(8, "big") + blob)
    return digest.digest()


def link(chain_key: bytes, previous: bytes, row: ExchangeRow) -> bytes:
    """The row's chain hash, given its predecessor's (``GENESIS`` for a writer's first row)."""
    message = previous + metadata_digest(row) + row.payload_digest
    return hmac.digest(chain_key, message, "sha256")


def head_mac(chain_key: bytes, chain: ChainRow) -> bytes:
    """Authenticates a ``chains`` row: without the key, its head and base cannot be moved to hide
    deleted records at either end of the chain."""
    numbers = f"{chain.writer_id}\x00{chain.base_seq}\x00{chain.head_seq}\x00".encode()
    return hmac.digest(chain_key, numbers + chain.base_hash + chain.head_hash, "sha256")


def payloads_present(row: ExchangeRow) -> bool:
    return row.erased_at is None and row.payload_purged_at is None
