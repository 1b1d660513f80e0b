"""Detection off the event loop, in worker processes.

spaCy holds the GIL, so threads would stall the event loop; each worker process loads its
own model once. A request that waits longer than ``timeout`` fails closed.

While every worker is busy, the texts of requests that arrive are held here and the next worker
to finish takes them all as one job (one ``nlp.pipe`` batch): spaCy's cost per call dominates
short texts, so under load sixteen short prompts cost about what six would one by one. Nothing
waits for a batch to fill: an idle worker takes a request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass

from redaction.detector import Detector, DetectorConfig
from redaction.errors import DetectionTimeout, DetectorUnavailable, RedactionError
from redaction.spans import Span
from redaction.work_split import SpanCache, plan

log = logging.getLogger(__name__)

_worker_detector: Detector | None = None
# texts of waiting requests given to one worker at once: short prompts batch well; long ones gain
# nothing from batching, and the first of a batch waits for the whole batch
MAX_BATCH_CHARS = 8_000


@dataclass
class _Waiting:
    """A request's texts waiting for a worker, and where its spans go."""

    texts: list[str]
    spans: asyncio.Future[list[list[Span]]]
    dispatched: bool = False  # given to a worker (a timeout after this may mean a stuck worker)

    @property
    def chars(self) -> int:
        return sum(map(len, self.texts))


def _init_worker(config: DetectorConfig) -> None:
    global _worker_detector
    _worker_detector = Detector(config)
    _worker_detector.warm_up()


def _analyze_in_worker(texts: Sequence[str]) -> list[list[Span]]:
    if _worker_detector is None:  # pragma: no cover - the initializer failed
        raise DetectorUnavailable("detector worker is not initialised")
    return _worker_detector.analyze(texts)


def _worker_pid_when_warm() -> int:
    # Holding the worker briefly makes concurrent pings land on different workers.
    time.sleep(0.1)
    return os.getpid()


class DetectorPool:
    """A pool of detector processes with an async ``analyze``."""

    def __init__(
        self, config: DetectorConfig, workers: int = 1, timeout: float = 30.0, cache_entries: int = 20_000
    ) -> None:
        self.config = config
        self.workers = workers
        self.timeout = timeout
        self._executor: ProcessPoolExecutor | None = None
        self._ready = False
        self._restart_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0  # jobs in the workers right now: splitting only uses idle ones
        self._waiting: deque[_Waiting] = deque()
        self._batches: set[asyncio.Task[None]] = set()
        self.batched_jobs = 0  # jobs that carried the texts of more than one request
        self.cache = SpanCache(cache_entries)
        self.restarts = 0

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def waiting(self) -> int:
        """Requests whose texts wait for a worker (they go as one job to the next free one)."""
        return len(self._waiting)

    async def start(self) -> None:
        """Start every worker and wait until each has loaded and warmed its model."""
        # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.config,),
        )
        loop = self._loop = asyncio.get_running_loop()
        try:
            # a worker answers only after its initializer (model load + warm-up) finished:
            # ready means every worker process has answered at least once.
            warm: set[int] = set()
            while len(warm) < self.workers:
                pings = (loop.run_in_executor(self._executor, _worker_pid_when_warm) for _ in range(self.workers))
                warm.update(await asyncio.gather(*pings))
        except BrokenExecutor as exc:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            raise DetectorUnavailable(f"detector workers failed to start: {type(exc).__name__}") from None
        self._ready = True
        log.info("detector ready: %d worker(s), model %s", self.workers, self.config.spacy_model)

    async def analyze(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans per text: remembered ones from the cache, the others from the workers (a long
        text shared among the idle ones)."""
        if not self._ready or self._executor is None:
            raise DetectorUnavailable("detector is not ready")
        keys = [self.cache.key(text) for text in texts]
        spans_by_key = {key: spans for key in keys if (spans := self.cache.get(key)) is not None}
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in spans_by_key}
        if any(text.strip() for text in missing.values()):
            found = await self._analyze_uncached(list(missing.values()))
            for key, spans in zip(missing, found, strict=True):
                self.cache.put(key, spans)
                spans_by_key[key] = tuple(spans)
        return [list(spans_by_key.get(key, ())) for key in keys]

    async def _analyze_uncached(self, texts: list[str]) -> list[list[Span]]:
        loop = asyncio.get_running_loop()
        with self._failing_closed(self._restart):
            if self._busy >= self.workers:
                waiting = _Waiting(texts, loop.create_future())
                self._waiting.append(waiting)
                try:
                    return await asyncio.wait_for(waiting.spans, self.timeout)
                except TimeoutError:
                    if waiting.dispatched:
                        raise  # a worker is stuck on it: replaced below
                    # overload, not a stuck worker: restarting would fail every request in the workers
                    raise DetectionTimeout(f"no detector worker was free within {self.timeout:g}s") from None
            work = plan(texts, self.workers - self._busy)
            self._busy += len(work.jobs)
            try:
                futures = [
                    loop.run_in_executor(self._executor, _analyze_in_worker, [piece.text for piece in job])
                    for job in work.jobs
                ]
                results = await asyncio.wait_for(asyncio.gather(*futures), self.timeout)
            finally:
                self._busy -= len(work.jobs)
                self._dispatch_waiting()
            return work.merge(list(results), len(texts))

    def _dispatch_waiting(self) -> None:
        """Give the waiting requests' texts to the idle workers, as few jobs as the size cap allows."""
        while self._waiting and self._busy < self.workers and self._executor is not None:
            batch: list[_Waiting] = []
            chars = 0
            while self._waiting and (not batch or chars + self._waiting[0].chars <= MAX_BATCH_CHARS):
                waiting = self._waiting.popleft()
                if not waiting.spans.done():  # done: it timed out while waiting
                    waiting.dispatched = True
                    batch.append(waiting)
                    chars += waiting.chars
            if batch:
                self._busy += 1
                task = asyncio.create_task(self._run_batch(batch))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _run_batch(self, batch: list[_Waiting]) -> None:
        texts = [text for waiting in batch for text in waiting.texts]
        self.batched_jobs += len(batch) > 1
        try:
            found = await asyncio.get_running_loop().run_in_executor(self._executor, _analyze_in_worker, texts)
        except Exception as exc:  # each request turns it into its own fail-closed error
            for waiting in batch:
                if not waiting.spans.done():
                    waiting.spans.set_exception(exc)
        else:
            for waiting in batch:
                spans, found = found[: len(waiting.texts)], found[len(waiting.texts) :]
                if not waiting.spans.done():
                    waiting.spans.set_result(spans)
        finally:
            self._busy -= 1
            self._dispatch_waiting()

    def analyze_blocking(self, texts: Sequence[str]) -> list[list[Span]]:
        """``analyze`` for code running in a worker thread (the response guard of a stream).

        Never call it on the event loop: it blocks until the detector answers.
        """
        executor = self._executor
        if not self._ready or executor is None:
            raise DetectorUnavailable("detector is not ready")
        if not any(text.strip() for text in texts):
            return [[] for _ in texts]
        with self._failing_closed(self._restart_from_thread):
            return executor.submit(_analyze_in_worker, list(texts)).result(self.timeout)

    @contextlib.contextmanager
    def _failing_closed(self, restart: Callable[[str], None]) -> Iterator[None]:
        """Every way detection can fail becomes a ``RedactionError``; a stuck or dead worker is replaced."""
        try:
            yield
        except TimeoutError:
            # the worker is still busy with this text and would delay every later request
            restart("detection timed out")
            raise DetectionTimeout(f"detection took longer than {self.timeout:g}s") from None
        except BrokenExecutor:
            restart("a detector worker died")
            raise DetectorUnavailable("detector worker died; restarting") from None
        except RedactionError:
            raise
        except Exception as exc:
            # only the exception type: its message could quote the text being analysed
            log.error("detection failed: %s", type(exc).__name__)
            raise DetectorUnavailable(f"detection failed ({type(exc).__name__})") from None

    def _restart_from_thread(self, reason: str) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._restart, reason)

    async def wait_ready(self) -> None:
        """Until a restart in progress has finished (or failed)."""
        if self._restart_task is not None:
            await asyncio.shield(self._restart_task)

    def _restart(self, reason: str) -> None:
        """Kill the workers and start fresh ones; until they are warm, requests fail closed."""
        if self._restart_task is not None and not self._restart_task.done():
            return
        self._ready = False
        self.restarts += 1
        log.error("%s: restarting the detector workers", reason)
        self._fail_waiting(DetectorUnavailable("detector workers are restarting"))
        if self._executor is not None:
            executor, self._executor = self._executor, None
            for process in list(getattr(executor, "_processes", {}).values()):
                process.kill()
            executor.shutdown(wait=False, cancel_futures=True)
        self._restart_task = asyncio.create_task(self._start_again())

    async def _start_again(self) -> None:
        try:
            await self.start()
        except DetectorUnavailable as exc:
            log.error("detector restart failed: %s", exc)

    def _fail_waiting(self, error: Exception) -> None:
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.spans.done():
                waiting.spans.set_exception(error)

    async def close(self) -> None:
        if self._restart_task is not None and not self._restart_task.done():
            self._restart_task.cancel()
        self._ready = False
        self._fail_waiting(DetectorUnavailable("detector is shutting down"))
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, lambda: executor.shutdown(cancel_futures=True))


class NoDetector:
    """``detection: off``: nothing is found, only the deny list and known values are replaced.

    For measuring the proxy's own overhead (bench/) and for deployments that only need the log;
    the proxy warns at start when it runs like this.
    """

    workers = 0
    ready = True
    restarts = 0

    async def start(self) -> None:
        log.warning("detection is OFF: personal data is forwarded unless it is on the deny list")

    async def analyze(self, texts: Sequence[str]) -> list[list[Span]]:
        return [[] for _ in texts]

    def analyze_blocking(self, texts: Sequence[str]) -> list[list[Span]]:
        return [[] for _ in texts]

    async def wait_ready(self) -> None:
        return None

    async def close(self) -> None:
        return None
