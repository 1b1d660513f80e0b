"""Cost of the response guard against the restore-only policy, on one streamed answer.

A 2 KB answer (with the caller's placeholders, and a few values the model made up) is fed in
4-character pieces, like tokens, through one field restorer with and without the guard. Prints
CPU per event and how far the emitted text lags behind what has arrived (characters held back),
median and max.

Usage: python bench/guard.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redaction import PlaceholderMap, ResponsePolicy
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
    for start in range(0, len(text), piece):
        chunk = text[start : start + piece]
        began = time.perf_counter()
        restorer.feed(chunk)
        costs.append((time.perf_counter() - began) * 1e6)
        lags.append(restorer.held_chars)
    restorer.flush()
    return {
        "us_per_event_p50": statistics.median(costs),
        "us_per_event_p99": sorted(costs)[int(len(costs) * 0.99) - 1],
        "lag_chars_p50": statistics.median(lags),
        "lag_chars_max": max(lags),
    }


def main() -> None:
    text = answer()
    rows = {"restore-only": run(None, text), "guard (structured types)": run(ResponsePolicy(), text)}
    print(f"{len(text)} character answer in 4-character events")
    print(f"{'policy':<26}{'us/event p50':>14}{'us/event p99':>14}{'lag p50 chars':>15}{'lag max chars':>15}")
    for name, r in rows.items():
        print(
            f"{name:<26}{r['us_per_event_p50']:>14.1f}{r['us_per_event_p99']:>14.1f}"
            f"{r['lag_chars_p50']:>15.0f}{r['lag_chars_max']:>15.0f}"
        )


if __name__ == "__main__":
    main()
