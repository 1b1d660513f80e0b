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
import concurrent.futures
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from redaction.detector import DetectorConfig
from redaction.detector_worker import DetectorWorker, WorkerDied, WorkerFailed
from redaction.errors import DetectionTimeout, DetectorUnavailable, RedactionError
from redaction.spans import Span
from redaction.work_split import SpanCache, plan

log = logging.getLogger(__name__)

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


class DetectorPool:
    """A pool of detector processes with an async ``analyze``."""

    def __init__(
        self, config: DetectorConfig, workers: int = 1, timeout: float = 30.0, cache_entries: int = 20_000
    ) -> None:
        self.config = config
        self.workers = workers
        self.timeout = timeout
        self._workers: list[DetectorWorker] = []
        self._ready = False
        self._restart_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[_Waiting] = deque()
        self._closed = False
        self.batched_jobs = 0  # jobs that carried the texts of more than one request
        self.cache = SpanCache(cache_entries)
        self.restarts = 0

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def busy(self) -> int:
        """Workers analysing a job right now."""
        return sum(worker.busy for worker in self._workers)

    @property
    def waiting(self) -> int:
        """Requests whose texts wait for a worker (they go as one job to the next free one)."""
        return len(self._waiting)

    async def start(self) -> None:
        """Start every worker and wait until each has loaded and warmed its model."""
        self._loop = asyncio.get_running_loop()
        workers = [
            DetectorWorker(self.config, on_idle=self._dispatch_waiting, on_death=self._worker_died)
            for _ in range(self.workers)
        ]
        started = await asyncio.gather(*(worker.start() for worker in workers), return_exceptions=True)
        failed = [r for r in started if isinstance(r, BaseException)]
        if not failed and not all(worker.available for worker in workers):
            failed = [WorkerDied()]  # one died after its READY while the others still loaded
        if failed or self._closed:
            for worker in workers:
                worker.kill()
            if self._closed:
                raise DetectorUnavailable("detector is shutting down")
            raise DetectorUnavailable(f"detector workers failed to start: {type(failed[0]).__name__}")
        self._workers = workers
        self._ready = True
        log.info("detector ready: %d worker(s), model %s", self.workers, self.config.spacy_model)

    def _idle_workers(self) -> list[DetectorWorker]:
        return [worker for worker in self._workers if worker.available]

    async def analyze(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans per text: remembered ones from the cache, the others from the workers (a long
        text shared among the idle ones)."""
        if not self._ready:
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
        with self._failing_closed():
            idle = self._idle_workers()
            if not idle:
                waiting = _Waiting(texts, loop.create_future())
                self._waiting.append(waiting)
                try:
                    return await asyncio.wait_for(waiting.spans, self.timeout)
                except TimeoutError:
                    if waiting.dispatched:
                        raise  # a worker is stuck on it: replaced below
                    # overload, not a stuck worker: restarting would fail every request in the workers
                    raise DetectionTimeout(f"no detector worker was free within {self.timeout:g}s") from None
            work = plan(texts, len(idle))
            answers = [
                worker.submit([piece.text for piece in job]) for worker, job in zip(idle, work.jobs, strict=False)
            ]
            results = await asyncio.wait_for(asyncio.gather(*answers), self.timeout)
            return work.merge(list(results), len(texts))

    def _dispatch_waiting(self) -> None:
        """Give the waiting requests' texts to the idle workers, as few jobs as the size cap allows."""
        while self._waiting and (idle := self._idle_workers()):
            batch: list[_Waiting] = []
            chars = 0
            while self._waiting and (not batch or chars + self._waiting[0].chars <= MAX_BATCH_CHARS):
                waiting = self._waiting.popleft()
                if not waiting.spans.done():  # done: it timed out while waiting
                    waiting.dispatched = True
                    batch.append(waiting)
                    chars += waiting.chars
            if batch:
                self.batched_jobs += len(batch) > 1
                answer = idle[0].submit([text for waiting in batch for text in waiting.texts])
                answer.add_done_callback(functools.partial(_hand_out, batch))

    def analyze_blocking(self, texts: Sequence[str]) -> list[list[Span]]:
        """``analyze`` for code running in a worker thread (the response guard of a stream).

        Never call it on the event loop: it blocks until the detector answers.
        """
        loop = self._loop
        if not self._ready or loop is None:
            raise DetectorUnavailable("detector is not ready")
        if not any(text.strip() for text in texts):
            return [[] for _ in texts]
        try:
            # the coroutine has its own timeout; this one only guards against a stopped loop
            return asyncio.run_coroutine_threadsafe(self.analyze(list(texts)), loop).result(self.timeout + 5)
        except concurrent.futures.TimeoutError:
            raise DetectionTimeout(f"detection took longer than {self.timeout:g}s") from None

    @contextlib.contextmanager
    def _failing_closed(self) -> Iterator[None]:
        """Every way detection can fail becomes a ``RedactionError``; a stuck or dead worker is replaced."""
        try:
            yield
        except TimeoutError:
            # the worker is still busy with this text and would delay every later request
            self._restart("detection timed out")
            raise DetectionTimeout(f"detection took longer than {self.timeout:g}s") from None
        except WorkerDied:
            self._restart("a detector worker died")
            raise DetectorUnavailable("detector worker died; restarting") from None
        except WorkerFailed as exc:
            log.error("detection failed: %s", exc.args[0])
            raise DetectorUnavailable(f"detection failed ({exc.args[0]})") from None
        except RedactionError:
            raise
        except Exception as exc:
            # only the exception type: its message could quote the text being analysed
            log.error("detection failed: %s", type(exc).__name__)
            raise DetectorUnavailable(f"detection failed ({type(exc).__name__})") from None

    def _worker_died(self) -> None:
        if self._ready:  # while (re)starting, ``start`` finds the dead worker unavailable
            self._restart("a detector worker died")

    async def wait_ready(self) -> None:
        """Until a restart in progress has finished (or failed)."""
        if self._restart_task is not None:
            await asyncio.shield(self._restart_task)

    def _restart(self, reason: str) -> None:
        """Kill the workers and start fresh ones; until they are warm, requests fail closed."""
        if self._closed or (self._restart_task is not None and not self._restart_task.done()):
            return
        self._ready = False
        self.restarts += 1
        log.error("%s: restarting the detector workers", reason)
        self._fail_waiting(DetectorUnavailable("detector workers are restarting"))
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.kill()
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
        self._closed = True  # a job failing because of the shutdown must not start new workers
        if self._restart_task is not None and not self._restart_task.done():
            self._restart_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart_task
        self._ready = False
        self._fail_waiting(DetectorUnavailable("detector is shutting down"))
        workers, self._workers = self._workers, []
        await asyncio.gather(*(worker.close() for worker in workers))


def _hand_out(batch: list[_Waiting], answer: asyncio.Future[list[list[Span]]]) -> None:
    """Each waiting request of a batch gets its own texts' spans, or the job's error (each
    request turns it into its own fail-closed error)."""
    error = answer.exception()
    found = [] if error is not None else answer.result()
    if error is None and len(found) != sum(len(waiting.texts) for waiting in batch):
        error = DetectorUnavailable("the detector answered for a different number of texts")
    for waiting in batch:
        spans, found = found[: len(waiting.texts)], found[len(waiting.texts) :]
        if not waiting.spans.done():
            if error is not None:
                waiting.spans.set_exception(error)
            else:
                waiting.spans.set_result(spans)


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
