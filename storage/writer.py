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

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.crypto import Keyring
from storage.records import ExchangeRecord, seal

log = logging.getLogger(__name__)

MAX_BATCH = 200
MAX_BACKOFF_SECONDS = 5.0


@dataclass
class WriterStats:
    written: int = 0
    failed: int = 0
    rejected: int = 0  # queue full at submit time
    retries: int = 0


class LogWriter:
    def __init__(
        self, sessions: async_sessionmaker, keyring: Keyring, *, queue_size: int = 10_000, attempts: int = 5,
        first_backoff: float = 0.05,
    ) -> None:  # fmt: skip
        self._sessions = sessions
        self._keyring = keyring
        self._queue: asyncio.Queue[ExchangeRecord] = asyncio.Queue(queue_size)
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = WriterStats()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-writer")

    def submit(self, record: ExchangeRecord) -> bool:
        """Queue a record for writing; False (and an error logged) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.stats.rejected += 1
            log.error("log queue full (%d records): record %s not written", self._queue.maxsize, record.id)
            return False
        self._idle.clear()
        return True

    async def wait_idle(self) -> None:
        """Until every submitted record has been written or given up on (tests, shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write_with_retries(batch)
            for _ in batch:
                self._queue.task_done()
            if self._queue.empty():
                self._idle.set()

    async def _write_with_retries(self, batch: list[ExchangeRecord]) -> None:
        delay = self._first_backoff
        for attempt in range(1, self._attempts + 1):
            try:
                rows = [seal(record, self._keyring) for record in batch]
                async with self._sessions.begin() as session:
                    session.add_all(rows)
                self.stats.written += len(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._attempts:
                    self.stats.failed += len(batch)
                    log.error(
                        "log write failed after %d attempts (%s): %d record(s) lost: %s",
                        attempt, type(exc).__name__, len(batch), ", ".join(r.id for r in batch),
                    )  # fmt: skip
                    return
                self.stats.retries += 1
                log.warning("log write failed (%s), retry %d in %.2fs", type(exc).__name__, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def close(self, drain_seconds: float) -> None:
        """Write what is queued (up to ``drain_seconds``), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), drain_seconds)
        except TimeoutError:
            log.error("log writer stopped with %d record(s) unwritten", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
