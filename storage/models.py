"""The log's schema: metadata in clear, payloads encrypted. Portable to SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary, String, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores no zone and returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        # stored in UTC on every backend (SQLite would drop another offset and compare wrongly)
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


ENCRYPTED_COLUMNS = ("original_request", "sanitized_request", "response", "mapping")
# what an audit row records (exchanges are the proxy's; the others are written by `privacy-proxy audit`/`keys`)
RECORD_KINDS = ("exchange", "reveal", "erase", "purge", "rotate", "export")


class ExchangeRow(Base):
    """One exchange through the proxy, or one audit action, as a link of its writer's chain.

    Metadata is in clear (listing and filtering need no key); each payload column is encrypted
    with the record's own data key, which is stored wrapped by a master key (``key_id``) or
    sealed to an auditor's public key. Erasing a record destroys its wrapped key and payloads;
    the chain still verifies because it covers ``payload_digest``, not the ciphertexts' bytes.
    """

    __tablename__ = "exchanges"
    __table_args__ = (UniqueConstraint("writer_id", "seq", name="uq_exchanges_writer_seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True, default="exchange")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True, doc="the client, or the auditor for actions")
    endpoint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256), index=True)
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(32), doc="ok, upstream_error, client_disconnected, ...")
    latency_total_ms: Mapped[float] = mapped_column(Float)
    latency_detection_ms: Mapped[float | None] = mapped_column(Float)
    latency_upstream_ms: Mapped[float | None] = mapped_column(Float)
    entity_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    training_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    target: Mapped[str | None] = mapped_column(String(64), doc="audit actions: the record acted on")
    # the chain: each writer (proxy process, audit command) numbers its rows and links them
    writer_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    payload_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # envelope encryption
    key_id: Mapped[str | None] = mapped_column(String(80), index=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    original_request: Mapped[bytes | None] = mapped_column(LargeBinary)
    sanitized_request: Mapped[bytes | None] = mapped_column(LargeBinary)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    mapping: Mapped[bytes | None] = mapped_column(LargeBinary)


class SubjectIndexRow(Base):
    """Blind index: a keyed hash of each detected value, so a person's records are found unread."""

    __tablename__ = "subject_index"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class ChainRow(Base):
    """Where each writer's chain starts (after retention purges) and ends (tail deletion shows)."""

    __tablename__ = "chains"

    writer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    base_seq: Mapped[int] = mapped_column(Integer, default=0)
    base_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    head_seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    mac: Mapped[bytes] = mapped_column(LargeBinary(32), doc="chain.head_mac over the row")


class LogSecretRow(Base):
    """The log's own keys (chain MAC, blind index), stored wrapped by a master key."""

    __tablename__ = "log_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(80))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


class HeartbeatRow(Base):
    """One row per proxy process, touched by the readiness probe to prove the log is writable."""

    __tablename__ = "heartbeats"

    writer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
