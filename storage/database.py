"""The engines: async SQLite (WAL) by default, PostgreSQL for several replicas; a synchronous SQLite
engine for the log process."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage.models import HeartbeatRow


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


def make_sync_writer_engine(url: str) -> Engine | None:
    """For a SQLite log: an engine on the synchronous driver, for a process that only writes the
    log (``storage.writer_process``); None for other databases. Its transactions begin with
    ``BEGIN IMMEDIATE``: the chain's head is read under the write lock, as ``FOR UPDATE`` does on
    PostgreSQL (Python's sqlite3 would begin only at the first write, after that read)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    engine = create_engine(parsed.set(drivername="sqlite"))

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: the one below instead

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database's schema is not one this version can use; the message says what to do."""


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _check_not_legacy(connection: Connection) -> None:
    if _current(connection) is None and inspect(connection).has_table("exchanges"):
        raise SchemaError(
            "the log database was created by a development build without migrations; "
            "point database_url at a new database (the old file can be kept for reference)"
        )


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head() or ""  # type: ignore[arg-type]


async def schema_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Apply every pending migration (``privacy-proxy db upgrade``, or at start)."""

    def upgrade(connection: Connection) -> None:
        _check_not_legacy(connection)
        command.upgrade(_alembic_config(connection), "head")

    before = await schema_revision(engine)
    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
    after = await schema_revision(engine)
    if after != before:
        log.info("log database schema upgraded from %s to %s", before or "empty", after)


async def check_schema(engine: AsyncEngine) -> None:
    """Raise ``SchemaError`` unless the schema is at this version's head (migrations off at start)."""
    current = await schema_revision(engine)
    if current != head_revision():
        raise SchemaError(
            f"log database schema is at {current or 'nothing'}, this version needs {head_revision()}: "
            "run `privacy-proxy db upgrade`"
        )


async def create_schema(engine: AsyncEngine, migrate: bool = True) -> None:
    """Bring the schema to this version (``migrate``), or check that it already is."""
    if migrate:
        await upgrade_schema(engine)
    else:
        await check_schema(engine)


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
