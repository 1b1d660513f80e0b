"""The log's schema: metadata in clear, payloads encrypted. Portable to SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores no zone and returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


ENCRYPTED_COLUMNS = ("original_request", "sanitized_request", "response", "mapping")


class ExchangeRow(Base):
    """One request/response exchange through the proxy."""

    __tablename__ = "exchanges"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256), index=True)
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(32), doc="ok, upstream_error, client_disconnected, ...")
    latency_total_ms: Mapped[float] = mapped_column(Float)
    latency_detection_ms: Mapped[float | None] = mapped_column(Float)
    latency_upstream_ms: Mapped[float | None] = mapped_column(Float)
    entity_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    key_id: Mapped[str] = mapped_column(String(64))
    original_request: Mapped[bytes | None] = mapped_column(LargeBinary)
    sanitized_request: Mapped[bytes | None] = mapped_column(LargeBinary)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    mapping: Mapped[bytes | None] = mapped_column(LargeBinary)


class HeartbeatRow(Base):
    """One row per proxy process, touched by the readiness probe to prove the log is writable."""

    __tablename__ = "heartbeats"

    writer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
