"""One detector process, spoken to directly from the event loop.

``ProcessPoolExecutor`` carries each job through three threads of the calling process (a wake-up
pipe, the queue's feeder, the result manager) before the event loop hears of the answer: about
1.3 ms of the main process's CPU per call, and as much latency, measured on these machines for a
short prompt. Here the loop writes a frame to a socket pair and reads the answer when the
socket becomes readable: nothing else runs in between.

Protocol: 4-byte length + pickled payload. The child sends ``READY`` once its model is loaded
and warm, then answers each list of texts with ``("ok", spans)`` or ``("error", type name)``
(only the type: a message could quote the text). It exits when the socket closes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import signal
import socket
import struct
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from redaction.detector import Detector, DetectorConfig
from redaction.spans import Span

_LENGTH = struct.Struct(">I")
READY = b"ready"


class WorkerDied(Exception):
    """The detector process exited (killed, crashed, out of memory) or could not start."""


class WorkerFailed(Exception):
    """The detector raised; ``args[0]`` is the exception's type name only."""


def _child_main(config: DetectorConfig, channel: socket.socket) -> None:
    # Ctrl-C and a group-wide SIGTERM reach the workers too: the parent decides when they stop (in-
    # flight requests are drained first); a worker exits when the parent closes its socket or dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    detector = Detector(config)
    detector.warm_up()
    stream = channel.makefile("rwb")
    stream.write(_LENGTH.pack(len(READY)) + READY)
    stream.flush()
    while header := stream.read(_LENGTH.size):
        (length,) = _LENGTH.unpack(header)
        texts = pickle.loads(stream.read(length))
        try:
            answer: tuple[str, Any] = ("ok", detector.analyze(texts))
        except Exception as exc:
            answer = ("error", type(exc).__name__)
        payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        stream.write(_LENGTH.pack(len(payload)) + payload)
        stream.flush()


class DetectorWorker:
    """A spawned process with a loaded detector, one job at a time.

    ``submit`` sends a job and returns a future for its spans. The worker stays busy until the
    answer arrives, even if nobody waits for it any more (a client that hung up): the next job
    must never be answered with the previous one's spans.
    """

    def __init__(self, config: DetectorConfig, on_idle: Callable[[], None], on_death: Callable[[], None]) -> None:
        self.config = config
        self.busy = False
        self._dead = False
        self._on_idle = on_idle
        self._on_death = on_death
        self._process: BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._watch: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[list[list[Span]]] | None = None

    @property
    def available(self) -> bool:
        return not self.busy and not self._dead and self._writer is not None and not self._writer.is_closing()

    async def start(self) -> None:
        """Spawn the process; return once its model is loaded and warm."""
        ours, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")  # not fork: this process runs threads and a loop
        process = context.Process(
            target=_child_main, args=(self.config, theirs), name="privacy-proxy-detector", daemon=True
        )
        starting = asyncio.get_running_loop().run_in_executor(None, process.start)
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:  # the proxy stops while workers start: none may be left behind
            starting.add_done_callback(lambda _: process.is_alive() and process.kill())
            raise
        finally:
            theirs.close()
        self._process = process
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
            if await self._read_frame() != READY:
                raise WorkerDied("the detector process did not start")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.kill()
            raise WorkerDied("the detector process did not start") from None
        except BaseException:  # cancelled while it loads its model
            self.kill()
            raise
        self._watch = asyncio.create_task(self._read_answers())

    async def _read_frame(self) -> bytes:
        assert self._reader is not None
        (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
        return await self._reader.readexactly(length)

    def submit(self, texts: Sequence[str]) -> asyncio.Future[list[list[Span]]]:
        """Send a job to this idle worker; the future gets the spans per text, or ``WorkerDied``
        / ``WorkerFailed``."""
        assert self.available and self._writer is not None, "submit to a busy or stopped worker"
        answer: asyncio.Future[list[list[Span]]] = asyncio.get_running_loop().create_future()
        payload = pickle.dumps(list(texts), protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_LENGTH.pack(len(payload)) + payload)  # the transport sends it as it can
        self.busy, self._answer = True, answer
        return answer

    async def _read_answers(self) -> None:
        """Hand each answer to its job and free the worker; notice the process's death, also when idle."""
        try:
            while True:
                status, value = pickle.loads(await self._read_frame())
                answer, self._answer, self.busy = self._answer, None, False
                if answer is not None and not answer.done():
                    if status == "ok":
                        answer.set_result(value)
                    else:
                        answer.set_exception(WorkerFailed(value))
                self._on_idle()
        except Exception:  # closed socket (the process died), or an answer that cannot be read
            self._dead = True
            if self._writer is not None:
                self._writer.close()
            self._fail_answer(WorkerDied("the detector process died"))
            if self._process is not None:  # not a kill of ours
                self._on_death()

    def _fail_answer(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def _detach(self, reason: str) -> BaseProcess | None:
        """Stop listening and close the socket (the process exits when it sees that); a waiting job fails."""
        process, self._process = self._process, None
        self._dead = True
        if self._watch is not None:
            self._watch.cancel()
        self._fail_answer(WorkerDied(reason))
        if self._writer is not None:
            self._writer.close()
        return process

    def kill(self) -> None:
        """Stop the process at once (stuck, or the pool restarts)."""
        if (process := self._detach("the detector process was stopped")) is not None:
            process.kill()
            asyncio.get_running_loop().run_in_executor(None, process.join, 5)  # reaped off the loop

    async def close(self) -> None:
        """Let the process finish on its own (killed if it takes more than 5 s)."""
        if (process := self._detach("the detector is shutting down")) is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, process.join, 5)
            if process.is_alive():
                process.kill()
                await loop.run_in_executor(None, process.join, 5)
