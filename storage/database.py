"""The async engine: SQLite (WAL) by default, PostgreSQL for several replicas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage.models import Base, HeartbeatRow


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (audit) never block the writer; NORMAL is durable across application crashes
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables. (Versioned migrations arrive with the audit store.)"""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


async def touch_heartbeat(sessions: async_sessionmaker, writer_id: str) -> None:
    """Write one small row: proves the database accepts writes right now."""
    async with sessions.begin() as session:
        row = (
            await session.execute(select(HeartbeatRow).where(HeartbeatRow.writer_id == writer_id))
        ).scalar_one_or_none()
        if row is None:
            session.add(HeartbeatRow(writer_id=writer_id, seen_at=datetime.now(UTC)))
        else:
            row.seen_at = datetime.now(UTC)
