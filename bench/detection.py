"""Detection alone: privacy-proxy's detector against vanilla Presidio, on the same texts.

Vanilla: ``AnalyzerEngine`` with en_core_web_sm (full pipeline, every recognizer), as its
documentation sets it up. privacy-proxy: the lean detector in one process (one core), and the
detector pool as the proxy uses it (2 workers sharing a long text, cache off so nothing is
remembered between repetitions). Then a 20-turn agent conversation, where each turn resends the
whole history: vanilla analyses everything every turn, the proxy's cache only the new messages.
Then throughput under concurrency (16 requests at a time, unique texts): vanilla in one process,
the pool with 1 worker and with 2 (how detection scales with cores; concurrent short prompts
share one ``nlp.pipe`` batch).

Findings are compared on the synthetic corpus (tests/corpus.py), restricted to the entity types
and thresholds the proxy uses.

Usage: python bench/detection.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redaction import DetectorConfig, DetectorPool
from redaction.detector import Detector, prepare_environment
from tests.corpus import CORPUS, conversation, long_text, prompt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_scaling


def vanilla_analyzer():
    prepare_environment()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": DetectorConfig().spacy_model}]}
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine())


async def interleaved_ms(
    vanilla, lean: Detector, pool: DetectorPool, text: str, repeat: int
) -> tuple[float, float, float]:
    """Median times of vanilla, the lean detector and the pool on ``text``, measured in turns (one
    of each per repetition) so that the machine's drift hits all three alike."""
    runs: dict[str, list[float]] = {"vanilla": [], "lean": [], "pool": []}
    vanilla.analyze(text, language="en")  # warm
    lean.analyze([text])
    await pool.analyze([text])
    for _ in range(repeat):
        began = time.perf_counter()
        vanilla.analyze(text, language="en")
        runs["vanilla"].append(time.perf_counter() - began)
        began = time.perf_counter()
        lean.analyze([text])
        runs["lean"].append(time.perf_counter() - began)
        began = time.perf_counter()
        await pool.analyze([text])
        runs["pool"].append(time.perf_counter() - began)
    vanilla_ms, lean_ms, pool_ms = (statistics.median(runs[name]) * 1000 for name in ("vanilla", "lean", "pool"))
    return vanilla_ms, lean_ms, pool_ms


def findings_differ(vanilla, lean: Detector) -> int:
    """Corpus texts where the proxy's findings differ from vanilla's (same types, same thresholds)."""
    differing = 0
    for text in CORPUS:
        expected = {
            (r.start, r.end, r.entity_type)
            for r in vanilla.analyze(text, language="en", entities=lean.entities)
            if lean._keep(r.entity_type, r.score)
        }
        got = {(s.start, s.end, s.entity_type) for s in lean.analyze([text])[0]}
        differing += expected != got
    return differing


async def throughput(pool: DetectorPool, text: str, seconds: float, concurrency: int = 16) -> float:
    """Requests per second through ``pool`` with ``concurrency`` requests in flight, every text unique."""
    numbers = iter(range(10**9))
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await pool.analyze([f"Request {next(numbers)}. {text}"])
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - began)


def vanilla_throughput(vanilla, text: str, seconds: float) -> float:
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        vanilla.analyze(f"Request {done}. {text}", language="en")
        done += 1
    return done / (time.perf_counter() - began)


async def scaling(vanilla, seconds: float) -> None:
    print("\nthroughput, 16 concurrent requests, unique texts (requests/s)")
    print(f"{'text':<16}{'vanilla':>10}{'pool 1 worker':>15}{'pool 2 workers':>16}{'2 / 1':>7}{'2 / vanilla':>13}")
    pools = {}
    for workers in (1, 2):
        pools[workers] = DetectorPool(DetectorConfig(), workers=workers, timeout=120, cache_entries=0)
        await pools[workers].start()
    for name, text in (("200 B prompt", prompt(200)), ("2 KB prompt", prompt(2048))):
        base = vanilla_throughput(vanilla, text, seconds)
        one = await throughput(pools[1], text, seconds)
        two = await throughput(pools[2], text, seconds)
        print(f"{name:<16}{base:>10.1f}{one:>15.1f}{two:>16.1f}{two / one:>7.2f}{two / base:>13.2f}")
    for pool in pools.values():
        await pool.close()
    print(f"(this machine, 2 processes of pure-Python work against 1: {machine_scaling():.2f}x)")


async def main(repeat: int) -> None:
    vanilla = vanilla_analyzer()
    lean = Detector(DetectorConfig())
    pool = DetectorPool(DetectorConfig(), workers=2, timeout=120, cache_entries=0)
    await pool.start()
    texts = {
        "200 B prompt": prompt(200),
        "2 KB prompt": prompt(2048),
        "20 KB prompt": prompt(20_000),
        "2 KB dense PII": long_text(2048),
    }
    print(f"detection time, median of {repeat} taken in turns (ms); ratio = time / vanilla Presidio")
    print(f"{'text':<16}{'vanilla':>10}{'proxy 1 core':>14}{'ratio':>7}{'proxy pool':>12}{'ratio':>7}")
    for name, text in texts.items():
        runs = max(3, repeat // 3) if len(text) > 10_000 else repeat
        base, single, pooled = await interleaved_ms(vanilla, lean, pool, text, runs)
        print(f"{name:<16}{base:>10.1f}{single:>14.1f}{single / base:>7.2f}{pooled:>12.1f}{pooled / base:>7.2f}")

    print("\n20-turn conversation (each turn resends the history): detection per turn (ms)")
    turns = conversation(20)
    cached = DetectorPool(DetectorConfig(), workers=2, timeout=120)
    await cached.start()
    vanilla_turns, proxy_turns = [], []
    for messages in turns:
        contents = [m["content"] for m in messages]
        began = time.perf_counter()
        for content in contents:
            vanilla.analyze(content, language="en")
        vanilla_turns.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        await cached.analyze(contents)
        proxy_turns.append((time.perf_counter() - began) * 1000)
    for turn in (1, 2, 5, 10, 20):
        print(f"  turn {turn:>2}: vanilla {vanilla_turns[turn - 1]:8.1f}   proxy {proxy_turns[turn - 1]:6.1f}")
    await cached.close()
    await pool.close()
    await scaling(vanilla, seconds=max(3.0, repeat / 2))
    print(f"\nfindings: {findings_differ(vanilla, lean)} of {len(CORPUS)} corpus texts differ from vanilla")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    asyncio.run(main(parser.parse_args().repeat))
