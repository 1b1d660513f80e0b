"""Writes exchange records in the background, so logging never slows an answer.

Handlers ``submit`` a record (never blocks); one task seals and writes records in batches,
retrying failures with backoff. A record that cannot be written is reported (log line without
content, counter), never silently dropped. ``close`` drains the queue within a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.util import identity_key

from storage.blind_index import record_digests
from storage.chain import GENESIS, head_mac, link
from storage.crypto import Keyring
from storage.envelope import KeyAccess
from storage.log_keys import LogSecrets, load_log_secrets
from storage.models import ChainRow, ExchangeRow, SubjectIndexRow
from storage.records import ExchangeRecord, seal_values

log = logging.getLogger(__name__)

MAX_BATCH = 200
_CHAINS = ChainRow.__table__
MAX_BACKOFF_SECONDS = 5.0


class RemoteAppendError(Exception):
    """An append failed in the log process; carries only the error's type name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def error_name(exc: BaseException) -> str:
    """What a log line may say about a failed write: the type, never the message (it may quote data)."""
    return exc.name if isinstance(exc, RemoteAppendError) else type(exc).__name__


class Appender(Protocol):
    """Seals and appends a batch of records to one writer's chain, in one transaction."""

    writer_id: str

    async def start(self) -> None: ...

    async def append(self, records: list[ExchangeRecord]) -> None: ...

    async def close(self) -> None: ...


@dataclass
class WriterStats:
    written: int = 0
    failed: int = 0
    rejected: int = 0  # queue full at submit time
    retries: int = 0


class ChainAppender:
    """Appends records to one writer's chain: seals them, numbers and links them, indexes their
    subjects, and moves the chain's head, all in one transaction (so a failed write leaves no gap).

    ``sync_engine``: the log process's own SQLite engine (synchronous driver). Through aiosqlite
    every statement is several hops to a thread and back: ~5 ms of CPU per batch, against ~1 ms
    without. Only a process that does nothing else may use it (it blocks while writing)."""

    def __init__(
        self, sessions: async_sessionmaker, keys: KeyAccess | Keyring, writer_id: str, sync_engine: Engine | None = None
    ) -> None:
        self._sessions = sessions
        self._keys = keys if isinstance(keys, KeyAccess) else KeyAccess(keys)
        self.writer_id = writer_id
        self._sync_engine = sync_engine
        self._secrets: LogSecrets | None = None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def secrets(self) -> LogSecrets:
        if self._secrets is None:
            self._secrets = await load_log_secrets(self._sessions, self._keys.keyring)
        return self._secrets

    async def append(self, records: list[ExchangeRecord], session: AsyncSession | None = None) -> None:
        """One transaction: the chain's head is read from the database (locked), so a commit whose
        outcome this process never learned, or a purge that moved the chain's base, is picked up.
        With ``session``, the records join the caller's transaction (an erasure and its record
        commit together)."""
        secrets = await self.secrets()
        rows = [seal_values(record, self._keys) for record in records]
        if session is not None:
            # the caller's pending changes first (a purge moves this chain's base): the head is read
            # from the database, and the ORM's copy of the row is stale afterwards
            await session.flush()
            await (await session.connection()).run_sync(self._append, secrets, records, rows)
            if (chain := session.identity_map.get(identity_key(ChainRow, self.writer_id))) is not None:
                session.expire(chain)
        elif self._sync_engine is not None:
            with self._sync_engine.begin() as connection:
                self._append(connection, secrets, records, rows)
        else:
            async with self._sessions.begin() as own:
                await (await own.connection()).run_sync(self._append, secrets, records, rows)

    def _append(
        self, connection: Connection, secrets: LogSecrets, records: list[ExchangeRecord], rows: list[dict[str, Any]]
    ) -> None:
        """The statements of one append (Core: the ORM's unit of work cost more than sealing)."""
        chain = connection.execute(
            select(_CHAINS).where(_CHAINS.c.writer_id == self.writer_id).with_for_update()
        ).first()
        if chain is None:
            seq, head = 0, GENESIS
            base = {"writer_id": self.writer_id, "created_at": datetime.now(UTC), "base_seq": 0, "base_hash": GENESIS}
        else:
            seq, head = chain.head_seq, chain.head_hash
            base = {"writer_id": self.writer_id, "base_seq": chain.base_seq, "base_hash": chain.base_hash}
        index_rows: list[dict[str, object]] = []
        for record, row in zip(records, rows, strict=True):
            seq += 1
            row["writer_id"], row["seq"] = self.writer_id, seq
            row["chain_hash"] = head = link(secrets.chain_key, head, SimpleNamespace(**row))  # type: ignore[arg-type]
            digests = record_digests(secrets.index_key, record.mapping)
            index_rows += [{"digest": digest, "record_id": record.id} for digest in digests]
        moved: dict[str, Any] = {"head_seq": seq, "head_hash": head}
        moved["mac"] = head_mac(secrets.chain_key, SimpleNamespace(**base, **moved))  # type: ignore[arg-type]
        if chain is None:
            connection.execute(insert(_CHAINS).values(**base, **moved))
        else:
            connection.execute(update(_CHAINS).where(_CHAINS.c.writer_id == self.writer_id).values(**moved))
        connection.execute(insert(ExchangeRow.__table__), rows)  # executemany: one statement per batch
        if index_rows:
            connection.execute(insert(SubjectIndexRow.__table__), index_rows)


class LogWriter:
    """The queue in front of an ``Appender`` (in this process, or ``ProcessAppender``'s child):
    batches, retries with backoff, and health for readiness."""

    def __init__(
        self,
        appender: Appender,
        *,
        queue_size: int = 10_000,
        queue_bytes: int = 256 * 1024 * 1024,
        attempts: int = 5,
        first_backoff: float = 0.05,
        flush_interval: float = 0.0,
    ) -> None:
        self._appender = appender
        # a transaction costs ~2-4 ms of CPU whatever its size (SQLite in the log process: ~1 ms), a
        # record ~0.3 ms: waiting up to ``flush_interval`` for more records keeps a lightly loaded
        # proxy from paying it per exchange
        self._flush_interval = flush_interval
        self._flush_now = asyncio.Event()
        self._queue: asyncio.Queue[ExchangeRecord] = asyncio.Queue(queue_size)
        self._max_bytes = queue_bytes
        self._queued_bytes = 0
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = WriterStats()
        # False once a record was lost; the proxy then refuses new exchanges until a write works
        self.healthy = True

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-writer")

    def submit(self, record: ExchangeRecord) -> bool:
        """Queue a record for writing; False (and an error logged) when the queue is full."""
        size = record.payload_size()
        if self._queued_bytes + size > self._max_bytes or self._queue.full():
            self.stats.rejected += 1
            self.healthy = False
            log.error(
                "log queue full (%d records, %d bytes): record %s not written",
                self._queue.qsize(), self._queued_bytes, record.id,
            )  # fmt: skip
            return False
        self._queue.put_nowait(record)
        self._queued_bytes += size
        self._idle.clear()
        if self._queue.qsize() >= MAX_BATCH:
            self._flush_now.set()
        return True

    async def wait_idle(self) -> None:
        """Until every submitted record has been written or given up on (tests, shutdown)."""
        self._flush_now.set()
        await self._idle.wait()

    async def _run(self) -> None:
        try:
            await self._appender.start()
        except Exception as exc:  # the first append tries again and reports
            log.error("log writer failed to start (%s)", error_name(exc))
        while True:
            batch = [await self._queue.get()]
            if self._flush_interval > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._flush_now.wait()
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            for record in batch:
                self._queued_bytes -= record.payload_size()
                self._queue.task_done()
            if self._queue.empty():
                self._idle.set()
                self._flush_now.clear()

    async def _write(self, batch: list[ExchangeRecord]) -> None:
        """Write a batch with retries; if it still fails, record by record, so one bad record
        (say, text the database refuses) costs only itself."""
        error = await self._attempt(batch, self._attempts)
        if error is None:
            return
        if len(batch) > 1:
            log.warning("batch of %d records failed (%s); writing them one by one", len(batch), error)
            for record in batch:
                single_error = await self._attempt([record], 1)
                if single_error is not None:
                    self._lost([record], single_error)
            return
        self._lost(batch, error)

    def _lost(self, records: list[ExchangeRecord], error: str) -> None:
        self.stats.failed += len(records)
        self.healthy = False
        log.error("log write failed (%s): record(s) lost: %s", error, ", ".join(r.id for r in records))

    async def _attempt(self, batch: list[ExchangeRecord], attempts: int) -> str | None:
        """None when written, else the name of the last error (never its message: it may quote data)."""
        delay = self._first_backoff
        for attempt in range(1, attempts + 1):
            try:
                await self._appender.append(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == attempts:
                    return error_name(exc)
                self.stats.retries += 1
                log.warning("log write failed (%s), retry %d in %.2fs", error_name(exc), attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            else:
                self.stats.written += len(batch)
                self.healthy = True
                return None
        return "no attempt"

    async def close(self, drain_seconds: float) -> None:
        """Write what is queued (up to ``drain_seconds``), then stop."""
        if self._task is None:
            return
        self._flush_now.set()
        try:
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        except TimeoutError:
            log.error("log writer stopped with %d record(s) unwritten", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._appender.close()
