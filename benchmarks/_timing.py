"""The one timing helper of the benchmarks: interleaved repeats, medians, paired ratios.

Shared machines drift (other jobs, frequency scaling), so things compared are timed in one
process, alternating, and summarised by medians; a ratio is the median of per-repeat ratios
(neighbours in time), which cancels slow drifts that a ratio of medians keeps.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from lightning_slt._runtime import cpu_description

__all__ = ["StepTimes", "cpu_description", "interleaved_times", "medians", "paired_ratio"]


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


class StepTimes(pl.Callback):
    """Wall seconds and target tokens of every training step of a real run, written as JSON at its end.

    A step's time runs from the end of the previous batch to the end of this one, so it holds
    everything the run does per step: fetching the batch, forward, backward, optimizer,
    callbacks (checkpoints included), logging. Appended to a real command line with
    ``--trainer.callbacks+=_timing.StepTimes --trainer.callbacks.path=FILE`` (``benchmarks/``
    on PYTHONPATH); ``train_throughput.py --fit`` does.
    """

    def __init__(self, path: str, pad_id: int = 0) -> None:
        self.path, self.pad_id = Path(path), pad_id
        self.ends: list[float] = []
        self.tokens: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.tokens.append(int(batch["tgt_out"].ne(self.pad_id).sum()))

    def on_train_end(self, trainer, pl_module) -> None:
        seconds = [b - a for a, b in zip(self.ends, self.ends[1:])]
        self.path.write_text(json.dumps({"step_seconds": seconds, "target_tokens": self.tokens[1:]}))
