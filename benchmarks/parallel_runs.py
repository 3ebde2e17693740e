"""Two training runs side by side with one thread each, or one after the other with all cores each?

An experiment's runs within one chain depend on each other, but runs of different chains or
seeds do not, so a part could train two of them at once. Whether that finishes a pair sooner
depends on the CPU: a run's GEMMs scale with threads, while its small ops, Python, data loading,
validation decoding and checkpoint writes barely do. This times the real command,
``lightning-slt fit --config conf/multi30k_cpu.yaml`` for ``--steps`` steps with one greedy
validation at the end (the whole valid set, greedy) and the step-``--steps`` checkpoint, both ways:

- ``in_a_row``: run A, then run B, each with every core (``OMP_NUM_THREADS`` = cores);
- ``side_by_side``: A and B started together, each with ``OMP_NUM_THREADS=1``
  (cores / 2 each on a larger machine).

The two ways alternate over ``--repeats`` (interleaved, rotating which goes first), and the
speed-up is the median of per-repeat ratios in_a_row / side_by_side (> 1: side by side is
faster). Each wall time includes each process's start-up, as a runner's would.

Prints one JSON line. Usage: python benchmarks/parallel_runs.py [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import cpu_description, interleaved_times, medians, paired_ratio

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "conf" / "multi30k_cpu.yaml"


def fit_command(steps: int, seed: int, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "lightning_slt.cli", "fit", "--config", str(CONFIG),
            f"--seed_everything={seed}", f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]", "--trainer.max_time=null",
            f"--trainer.logger.init_args.save_dir={workdir}"]


def start(steps: int, seed: int, threads: int, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    return subprocess.Popen(fit_command(steps, seed, workdir), env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait(process: subprocess.Popen) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a timed run failed (exit {process.returncode}):\n{stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    workdir = Path(tempfile.mkdtemp(prefix="parallel_runs_"))

    def in_a_row() -> None:
        for seed in (0, 1):
            wait(start(args.steps, seed, cores, workdir))

    def side_by_side() -> None:
        processes = [start(args.steps, seed, max(1, cores // 2), workdir) for seed in (0, 1)]
        for process in processes:
            wait(process)

    times = interleaved_times({"in_a_row": in_a_row, "side_by_side": side_by_side},
                              repeats=args.repeats, warmup=0, rotate=True)
    print(json.dumps({
        "cpu": cpu_description(), "cores": cores, "steps_per_run": args.steps, "repeats": args.repeats,
        "seconds_per_pair": {name: [round(t, 1) for t in values] for name, values in times.items()},
        "median_seconds_per_pair": {name: round(t, 1) for name, t in medians(times).items()},
        "speedup_side_by_side": round(paired_ratio(times, "in_a_row", "side_by_side"), 3),
    }))


if __name__ == "__main__":
    main()
