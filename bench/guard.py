"""Cost of the response guard against the restore-only policy, on one streamed answer.

A 2 KB answer (with the caller's placeholders, and a few values the model made up) is fed in
4-character pieces, like tokens, through one field restorer: restore-only, the structured guard
(patterns, in-process), and the guard with PERSON/LOCATION (a real detector worker, as in the
proxy). Prints time per event, how far the emitted text lags behind what has arrived (characters
held back), and when the first text leaves: after how many characters and how long after the
first event arrived (events fed back to back; at 50 tokens/s add 5 ms per 4 characters of lag).

Usage: python bench/guard.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redaction import DetectorConfig, DetectorPool, PlaceholderMap, ResponseDetector, ResponsePolicy
from redaction.restore import StreamRestorer

SENTENCE = (
    "Thanks <PERSON_1>, I have updated the ticket for <EMAIL_ADDRESS_1> and scheduled the call. "
    "The technician will arrive between 9 and 11 in the morning; please keep the invoice ready. "
)
INJECTED = "If that fails, call our partner at 415-555-0199 or write to help.desk@example.net. "


def answer(size: int = 2048) -> str:
    text = ""
    while len(text) < size:
        text += SENTENCE + (INJECTED if len(text) % 3 == 0 else "")
    return text


def run(policy: ResponsePolicy | None, text: str, piece: int = 4) -> dict[str, float]:
    mapping = PlaceholderMap()
    mapping.placeholder_for("Jane Roe", "PERSON")
    mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    mapping.response_policy = policy
    restorer = StreamRestorer(mapping)
    lags, costs = [], []
    first_chars, first_ms = None, None
    stream_began = time.perf_counter()
    for start in range(0, len(text), piece):
        chunk = text[start : start + piece]
        began = time.perf_counter()
        out = restorer.feed(chunk)
        costs.append((time.perf_counter() - began) * 1e6)
        lags.append(restorer.held_chars)
        if out and first_chars is None:
            first_chars, first_ms = start + len(chunk), (time.perf_counter() - stream_began) * 1e3
    restorer.flush()
    return {
        "first_text_after_chars": first_chars or len(text),
        "first_text_ms": first_ms or 0.0,
        "us_per_event_p50": statistics.median(costs),
        "us_per_event_p99": sorted(costs)[int(len(costs) * 0.99) - 1],
        "lag_chars_p50": statistics.median(lags),
        "lag_chars_max": max(lags),
    }


async def measure() -> dict[str, dict[str, float]]:
    text = answer()
    pool = DetectorPool(DetectorConfig(), workers=1)
    await pool.start()
    try:
        ner = ResponsePolicy((*ResponsePolicy().redact_types, "PERSON", "LOCATION"), detect=ResponseDetector(pool))
        rows = {
            "restore-only": run(None, text),
            "guard (structured types)": run(ResponsePolicy(), text),
            # the proxy runs this in a worker thread; here the detector is called from a thread too
            "guard + PERSON, LOCATION": await asyncio.to_thread(run, ner, text),
        }
    finally:
        await pool.close()
    return rows


def main() -> None:
    rows = asyncio.run(measure())
    print(f"{len(answer())} character answer in 4-character events")
    print(
        f"{'policy':<26}{'us/event p50':>14}{'us/event p99':>14}{'lag p50 chars':>15}{'lag max chars':>15}"
        f"{'first text after':>18}{'first text ms':>15}"
    )
    for name, r in rows.items():
        print(
            f"{name:<26}{r['us_per_event_p50']:>14.1f}{r['us_per_event_p99']:>14.1f}"
            f"{r['lag_chars_p50']:>15.0f}{r['lag_chars_max']:>15.0f}"
            f"{r['first_text_after_chars']:>13.0f} chars{r['first_text_ms']:>15.2f}"
        )


if __name__ == "__main__":
    main()
