"""Independent runs of an experiment trained side by side: ``lightning-slt experiment --parallel N``.

Why: on a CPU a run's GEMMs scale with threads, but its small ops, Python, data loading,
validation decoding and checkpoint writes barely do, so two runs with one thread each finish a
pair sooner than two runs in a row with every core each (``benchmarks/parallel_runs.py``:
1.30x on a 2-core AMD EPYC with AVX512-BF16). On a machine with N GPUs it is how one fills them.

A run waits for the runs it builds on (its lineage: the mask's and the weights' runs); runs of
other chains or seeds go side by side, each in a fresh (spawned) process with cores / N threads
(every core for a run that starts alone; ``OMP_NUM_THREADS`` fixes the count), on GPU i of N where
there are N GPUs, its output in ``train.log`` in its folder. A run that fails
stops new starts; the ones running finish (every run is resumable), and the error names the
failed runs and their logs. Interrupted, the runner stops its runs before it lets go of the
experiment's lock (they resume from their last checkpoint). Threads change the order of floating-point sums, so a run
trained with one thread is not bit-identical to one trained with two (its metrics.json says
which).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One run to train: ``key`` names it, ``needs`` the keys that must finish first."""

    key: tuple[int, str]
    needs: frozenset[tuple[int, str]]
    log: Path
    args: tuple


def train_side_by_side(jobs: Sequence[Job], parallel: int, train: Callable[..., None]) -> None:
    """Call ``train(*job.args)`` for every job, at most ``parallel`` at once, each after its needs.

    Raises:
        RuntimeError: some runs failed (after the others running finished), naming their logs.
    """
    check_parallel(parallel)
    keys = {job.key for job in jobs}
    done = {need for job in jobs for need in job.needs if need not in keys}  # finished before this call
    context = multiprocessing.get_context("spawn")
    cores, fixed = len(os.sched_getaffinity(0)), os.environ.get("OMP_NUM_THREADS")
    devices = _gpu_slots(parallel)
    pending, running, failed = list(jobs), {}, []
    try:
        while pending or running:
            free_slots = [slot for slot in range(parallel) if slot not in {slot for _, _, slot in running.values()}]
            starting = [job for job in pending if job.needs <= done][:len(free_slots) if not failed else 0]
            # a run that starts alone gets every core: nothing can join it before it ends (what waits
            # for a run can only start once that run is done)
            threads = int(fixed) if fixed else max(1, cores // max(1, len(running) + len(starting)))
            for job in starting:
                slot = free_slots.pop(0)
                process = context.Process(target=_child, args=(train, job.args, job.log, threads))
                with _environment(OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES=devices[slot]):
                    process.start()  # a spawned child starts with the environment it is started in
                running[process.sentinel] = (process, job, slot)
                pending.remove(job)
                log.warning(f"started seed{job.key[0]}/{job.key[1]} ({len(running)} running, {len(pending)} waiting; "
                            f"output: {job.log})")
            if not running:
                break  # what is left waits for a run that failed
            for sentinel in multiprocessing.connection.wait(list(running)):
                process, job, _ = running.pop(sentinel)
                process.join()
                if process.exitcode == 0:
                    done.add(job.key)
                else:
                    failed.append(job)
                    log.warning(f"seed{job.key[0]}/{job.key[1]} failed (exit {process.exitcode}); starting no more runs")
    finally:  # interrupted (Ctrl-C, SIGTERM, an error here): no run goes on training outside the experiment's lock
        for process, _, _ in running.values():
            process.terminate()
        for process, _, _ in running.values():
            process.join()
    if failed:
        logs = "; ".join(f"seed{job.key[0]}/{job.key[1]}: {job.log}" for job in failed)
        raise RuntimeError(f"{len(failed)} run(s) failed ({logs}: see the end of each log); {len(pending)} run(s) "
                           "that build on them were not started; run the same command again to resume")


def check_parallel(parallel: int) -> None:
    """``parallel`` must be a count of runs trained at once."""
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1 (runs trained at once), got {parallel}")


def _gpu_slots(parallel: int) -> list[str | None]:
    """The GPU each slot's runs see (``CUDA_VISIBLE_DEVICES``, within what this process may use),
    or None for each where there is no GPU."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return [None] * parallel
    if count < parallel:
        raise ValueError(f"--parallel {parallel} gives each run a GPU of its own, but {count} GPU(s) are visible; use "
                         f"--parallel {count} or fewer")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(count)]
    return ids[:parallel]


@contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, leave alone) environment variables for the block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _child(train: Callable[..., None], args: tuple, log_path: Path, threads: int) -> None:
    """One run in a fresh process: its threads, stdout and stderr into its log; it ends with the
    process that started it."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    import torch

    torch.set_num_threads(threads)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        train(*args)
