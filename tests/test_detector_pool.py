"""The detector pool under concurrency: requests that wait for a busy worker share one job.

Uses the session's real detector (one worker process), so the batching and the spans are real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config import Settings
from proxy.state import detector_config
from redaction import DetectionTimeout, DetectorPool, DetectorUnavailable

# made-up people, obviously synthetic (see tests/corpus.py)
NAMES = ("Jane Roe", "John Doe", "Richard Roe", "Mary Major", "John Smith", "Janie Doe")


def text_about(index: int, name: str) -> str:
    return f"Ticket {index} from pool test: please call {name} back about the parcel."


def observe_submit(worker: Any, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """An event set once ``worker`` has been sent a job (the job itself runs unchanged)."""
    submitted, submit = asyncio.Event(), worker.submit

    def observed_submit(texts: list[str]) -> asyncio.Future:
        answer = submit(texts)
        submitted.set()
        return answer

    monkeypatch.setattr(worker, "submit", observed_submit)
    return submitted


async def test_requests_waiting_for_a_busy_worker_share_one_job_and_get_their_own_spans(detector: DetectorPool):
    texts = [text_about(i, name) for i, name in enumerate(NAMES)]
    before = detector.batched_jobs
    # the first request takes the only worker; the five others wait and then go as one job
    together = await asyncio.gather(*(detector.analyze([text]) for text in texts))
    assert detector.batched_jobs == before + 1

    for text, name, [spans] in zip(texts, NAMES, together, strict=True):
        assert [text[s.start : s.end] for s in spans if s.entity_type == "PERSON"] == [name]
        assert [spans] == await detector._analyze_uncached([text])  # what the text gets alone


async def test_a_request_alone_is_not_held_back(detector: DetectorPool):
    before = detector.batched_jobs
    [spans] = await detector.analyze([text_about(99, "Mary Major")])
    assert detector.batched_jobs == before
    assert any(s.entity_type == "PERSON" for s in spans)


async def test_a_request_waiting_for_a_worker_fails_closed_when_its_time_is_up(detector: DetectorPool, monkeypatch):
    """The timeout counts from arrival: a request still waiting for a worker fails closed (503, nothing
    forwarded) like the one the worker is stuck on: DetectionTimeout, or DetectorUnavailable if the
    restart that the stuck worker causes comes first."""
    monkeypatch.setattr(detector, "timeout", 0.001)
    long_texts = [" ".join(text_about(i * 100 + j, "Jane Roe") for j in range(60)) for i in range(2)]
    first, waiting = await asyncio.gather(*(detector.analyze([text]) for text in long_texts), return_exceptions=True)
    assert isinstance(first, DetectionTimeout)
    assert isinstance(waiting, (DetectionTimeout, DetectorUnavailable))
    assert detector.waiting == 0
    monkeypatch.setattr(detector, "timeout", 60)
    await detector.wait_ready()  # the stuck worker was replaced
    [spans] = await detector.analyze([text_about(7, "Jane Roe")])
    assert [s.entity_type for s in spans] == ["PERSON"]


async def test_overload_fails_the_waiting_request_without_restarting_the_workers(detector: DetectorPool, monkeypatch):
    """A request that never got a worker timed out because of load, not a stuck worker: it fails
    closed alone; replacing the workers would fail every request they hold."""
    restarts = detector.restarts
    for worker in detector._workers:  # every worker taken, none will free up
        monkeypatch.setattr(worker, "busy", True)
    monkeypatch.setattr(detector, "timeout", 0.05)
    with pytest.raises(DetectionTimeout, match="no detector worker was free"):
        await detector.analyze([text_about(8, "Jane Roe")])
    assert detector.restarts == restarts and detector.ready


async def test_a_request_whose_caller_left_keeps_its_worker_until_the_answer_arrives(
    detector: DetectorPool, monkeypatch
):
    """A client that hangs up cancels its detection, but the worker is still analysing its text:
    the next request must wait for that answer, never receive it as its own."""
    worker = detector._workers[0]
    submitted = observe_submit(worker, monkeypatch)
    abandoned = asyncio.create_task(detector.analyze([" ".join(text_about(i, "John Doe") for i in range(40))]))
    await submitted.wait()
    assert worker.busy and detector.busy == 1  # the privacy_proxy_detector_busy_jobs gauge
    abandoned.cancel()
    [spans] = await detector.analyze([text_about(5, "Mary Major")])
    assert [text_about(5, "Mary Major")[s.start : s.end] for s in spans if s.entity_type == "PERSON"] == ["Mary Major"]
    assert detector.ready


async def test_a_killed_worker_is_replaced_and_requests_fail_closed_meanwhile(detector: DetectorPool):
    restarts = detector.restarts
    worker = detector._workers[0]
    worker._process.kill()  # as the kernel's OOM killer would
    with pytest.raises(DetectorUnavailable):
        for i in range(1000):  # until the pool has noticed the death (an EOF on the worker's socket)
            await detector.analyze([text_about(1000 + i, "Jane Roe")])
    await detector.wait_ready()
    assert detector.restarts == restarts + 1 and detector.ready
    [spans] = await detector.analyze([text_about(11, "Jane Roe")])
    assert [s.entity_type for s in spans] == ["PERSON"]


async def test_closing_during_a_detection_fails_it_and_starts_no_new_workers(monkeypatch):
    """At shutdown a job still in a worker fails closed; that failure must not restart the workers."""
    pool = DetectorPool(detector_config(Settings()), workers=1, timeout=60)
    await pool.start()
    worker = pool._workers[0]
    submitted = observe_submit(worker, monkeypatch)
    job = asyncio.create_task(pool.analyze([" ".join(text_about(i, "Jane Roe") for i in range(40))]))
    await submitted.wait()
    await pool.close()
    with pytest.raises(DetectorUnavailable):
        await job
    assert pool.restarts == 0 and pool._restart_task is None and not pool.ready
    assert not worker._process  # stopped, not replaced
