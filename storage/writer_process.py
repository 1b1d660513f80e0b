"""The log's sealing and database work in a process of its own.

Sealing a record (a data key, four AES-GCM payloads, the chain link, the blind index) and the
database round trip cost about 0.3-0.5 ms of CPU per exchange. On the event loop that serves
requests this is added to every answer; handed to a child process, the loop only pickles the
batch and writes it to a socket. The child runs the same ``ChainAppender`` as the in-process
writer, so records, chains and retries are identical; the ``LogWriter`` in front of it still
batches, retries and reports health.

Protocol over a socket pair, one batch in flight at a time: the parent sends a frame (4-byte
length + pickled list of records; an empty frame asks the child to finish), the child answers
with a frame holding the error's type name, empty when the batch was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.crypto import Keyring
from storage.database import make_engine, make_sync_writer_engine
from storage.envelope import AuditorPublicKey, KeyAccess
from storage.records import ExchangeRecord
from storage.writer import ChainAppender, RemoteAppendError

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
READY = b"ready"
BATCH_TIMEOUT_SECONDS = 120.0  # a child stuck this long on one batch is replaced
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class AppenderSpec:
    """What the child needs to append to this writer's chain (pickled once, at spawn)."""

    database_url: str
    keyring: Keyring
    auditor_public_key: str | None
    writer_id: str


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(length)


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def _child_main(spec: AppenderSpec, channel: socket.socket) -> None:
    # Ctrl-C, and a SIGTERM sent to the whole group (timeout, systemd, a container runtime's
    # process-group kill), reach this process too: the parent drains the log, so it must not die
    # first. It exits when the parent closes the socket (or dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_serve_parent(spec, channel))


async def _serve_parent(spec: AppenderSpec, channel: socket.socket) -> None:
    auditor = AuditorPublicKey.from_text(spec.auditor_public_key) if spec.auditor_public_key else None
    engine = make_engine(spec.database_url)
    sync_engine = make_sync_writer_engine(spec.database_url)  # this process only writes: it may block
    appender = ChainAppender(async_sessionmaker(engine, expire_on_commit=False), KeyAccess(spec.keyring, auditor),
                             spec.writer_id, sync_engine)  # fmt: skip
    reader, writer = await asyncio.open_unix_connection(sock=channel)
    writer.write(_frame(READY))
    try:
        while payload := await _read_frame(reader):
            try:
                await appender.append(pickle.loads(payload))
                answer = b""
            except Exception as exc:  # only the type: the message may quote parameters
                answer = type(exc).__name__.encode()
            writer.write(_frame(answer))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the parent is gone
    finally:
        await engine.dispose()
        if sync_engine is not None:
            sync_engine.dispose()
        writer.close()


class ProcessAppender:
    """``ChainAppender.append`` carried out by a child process. A child that dies or hangs is
    replaced, and its batch reported as failed: the writer's retry sends it to the new child (the
    chain's head is read from the database, so a batch the old child did commit is never lost
    track of; at worst it is written twice, with different sequence numbers)."""

    def __init__(self, spec: AppenderSpec) -> None:
        self.spec = spec
        self.writer_id = spec.writer_id
        self.restarts = 0
        self._process: BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Spawn the child and wait until it has imported everything and built its engine."""
        if self._process is not None:
            return
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")  # not fork: this process runs threads and a loop
        process = context.Process(target=_child_main, args=(self.spec, theirs), name="privacy-proxy-log", daemon=True)
        await asyncio.get_running_loop().run_in_executor(None, process.start)
        theirs.close()
        self._process = process
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                if await _read_frame(self._reader) != READY:
                    raise RemoteAppendError("LogProcessStartFailed")
        except (asyncio.IncompleteReadError, TimeoutError):
            await self._stop_child()
            raise RemoteAppendError("LogProcessStartFailed") from None

    async def append(self, records: list[ExchangeRecord]) -> None:
        await self.start()
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(_frame(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)))
            async with asyncio.timeout(BATCH_TIMEOUT_SECONDS):
                await self._writer.drain()
                answer = await _read_frame(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            reason = "stopped answering" if isinstance(exc, TimeoutError) else "died"
            log.error("the log process %s: starting a new one", reason)
            self.restarts += 1
            await self._stop_child()
            raise RemoteAppendError("LogProcessDied") from None
        if answer:
            raise RemoteAppendError(answer.decode())

    async def _stop_child(self, grace: float = 0.0) -> None:
        process, self._process = self._process, None
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        if process is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join, grace)
        if process.is_alive():
            process.kill()
            await loop.run_in_executor(None, process.join)

    async def close(self) -> None:
        """Ask the child to finish (it commits nothing more: the writer drained first) and wait for it."""
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                self._writer.write(_frame(b""))
                await self._writer.drain()
        await self._stop_child(grace=10.0)
