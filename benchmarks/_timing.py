"""The one timing helper of the benchmarks: interleaved repeats, medians, paired ratios.

Shared machines drift (other jobs, frequency scaling), so things compared are timed in one
process, alternating, and summarised by medians; a ratio is the median of per-repeat ratios
(neighbours in time), which cancels slow drifts that a ratio of medians keeps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from lightning_slt._runtime import cpu_description

__all__ = ["cpu_description", "interleaved_times", "medians", "paired_ratio"]


def interleaved_times(functions: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                      rotate: bool = False, into: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Seconds of each function per repeat, run alternately after ``warmup`` untimed rounds.

    Args:
        rotate: start each repeat with the next function, so none is always first (caches,
            turbo after idle).
        into: lists to append to (to add repeats in blocks, as mask_overhead does).
    """
    times = into if into is not None else {name: [] for name in functions}
    names = list(functions)
    for _ in range(warmup):
        for function in functions.values():
            function()
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)] if rotate else names
        for name in order:
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def paired_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """Median over repeats of time(name) / time(baseline)."""
    return statistics.median(t / b for t, b in zip(times[name], times[baseline]))
