"""How much this machine gives a second process: the ceiling for any 1-core to 2-core comparison."""

from __future__ import annotations

import multiprocessing
import time


def _spin(iterations: int) -> None:
    total = 0
    for number in range(iterations):
        total += number


def machine_scaling(iterations: int = 10_000_000) -> float:
    """The machine's own ceiling: the same pure-Python work in 2 processes at once against 1 (2.0 on
    two idle dedicated cores; less where the cores are shared or their clock drops under load)."""
    context = multiprocessing.get_context("spawn")
    times = []
    for processes in (1, 2):
        with context.Pool(processes) as pool:
            pool.map(_spin, [1000] * processes)  # started and warm
            began = time.perf_counter()
            pool.map(_spin, [iterations] * processes)
            times.append(time.perf_counter() - began)
    return 2 * times[0] / times[1]
