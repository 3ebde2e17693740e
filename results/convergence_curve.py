"""The dense model's plateau under the converged protocol's schedule, and the T read off it.

The converged reproduction (``conf/experiments/reproduce_multi30k_converged.yaml``) trains every
run with warmup-stable-decay: a short linear warm-up, the peak rate held, and a linear cooldown
over the last ``cooldown`` part of T (``model.cooldown_fraction``). Up to its cooldown a run of
length T is the held-rate run, so one held-rate *trunk* per seed and a short cooldown *branch*
from its step-(1 − cooldown)·T checkpoint give the dense model at every candidate T without
training each from scratch (the branch resumes the trunk's checkpoint, optimizer and data order
included, with ``max_steps=T``):

    seed{S}/trunk      held rate to --trunk steps, validation every 200, a checkpoint every 200
    seed{S}/T{T}       from the trunk's step (1 − cooldown)·T, cooling down to T, validation every 100

Both seeds train side by side (``--parallel 2``, one thread each) or one after the other. Every
stage is a ``lightning-slt fit`` of the shipped dense config with this folder's ``protocol.yaml``;
a stage that finished is skipped, a killed one resumes from its last checkpoint: run the same
command again. ``--report`` only reads the logs and writes:

    curve.csv       seed, run (trunk or T{T}), step, valid BLEU, chrF, loss
    endpoints.csv   seed, T, valid BLEU at T; the plateau and the chosen T in summary.json
    curve.png       held trunk and the cooldown branches, per seed

The rule for T (fixed before the runs): the plateau is the mean over seeds of the valid BLEU at
the largest T; T is the smallest candidate from which on every candidate's mean end point is
within 0.5 BLEU of the plateau.

Usage: python results/convergence_curve.py OUT_DIR [--seeds 0 1] [--trunk 2400] [--ends 1000 1500 2000 2500 3000]
       [--parallel 2] [--report]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "conf" / "multi30k_cpu.yaml"
PROTOCOL = Path(__file__).resolve().parent / "multi30k_convergence" / "protocol.yaml"
COOLDOWN = 0.2
TOLERANCE = 0.5


def branch_point(end: int) -> int:
    return round((1 - COOLDOWN) * end)


def fit(out: Path, seed: int, name: str, max_steps: int, threads: int, extra: list[str]) -> None:
    """One stage, skipped when done, resumed from its last.ckpt when killed."""
    folder = out / f"seed{seed}" / name
    done = folder / "done"
    if done.exists():
        return
    last = folder / "checkpoints" / "last.ckpt"
    command = [sys.executable, "-m", "lightning_slt.cli", "fit", "--config", str(BASE), "--trainer.callbacks=[]",
               "--config", str(PROTOCOL),
               f"--seed_everything={seed}", f"--trainer.max_steps={max_steps}",
               f"--trainer.logger.init_args.save_dir={out / f'seed{seed}'}", f"--trainer.logger.init_args.name={name}",
               "--trainer.logger.init_args.version=0",
               f"--trainer.callbacks.init_args.dirpath={folder / 'checkpoints'}", *extra]
    if last.exists():
        command = [arg for arg in command if not arg.startswith("--ckpt_path")] + [f"--ckpt_path={last}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout.log", "a") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"seed {seed} {name} failed (exit {code}); see {folder / 'stdout.log'}")
    done.write_text("")


def train_seed(out: Path, seed: int, trunk: int, ends: list[int], threads: int) -> None:
    fit(out, seed, "trunk", trunk, threads, [])
    for end in ends:
        start = out / f"seed{seed}" / "trunk" / "checkpoints" / f"step{branch_point(end)}.ckpt"
        fit(out, seed, f"T{end}", end, threads,
            [f"--model.cooldown_fraction={COOLDOWN}", "--trainer.val_check_interval=100", f"--ckpt_path={start}"])


def read_curve(out: Path, seeds: list[int]) -> list[dict]:
    rows = []
    for seed in seeds:
        for metrics in sorted((out / f"seed{seed}").glob("*/version_0/metrics.csv")):
            run = metrics.parent.parent.name
            for row in csv.DictReader(open(metrics)):
                if row.get("val/bleu"):
                    rows.append({"seed": seed, "run": run, "step": int(row["step"]) + 1,
                                 "val_bleu": round(float(row["val/bleu"]), 3), "val_chrf": round(float(row["val/chrf"]), 3),
                                 "val_loss": round(float(row["val/loss"]), 4)})
    return rows


def choose_t(endpoints: dict[int, dict[int, float]]) -> dict:
    """The plateau (mean over seeds at the largest T) and the smallest T from which every mean end
    point stays within TOLERANCE of it."""
    means = {end: statistics.mean(by_seed.values()) for end, by_seed in sorted(endpoints.items())}
    plateau = means[max(means)]
    within = [end for end in means if all(abs(means[later] - plateau) <= TOLERANCE for later in means if later >= end)]
    return {"plateau_valid_bleu": round(plateau, 3), "tolerance": TOLERANCE, "T": min(within),
            "mean_valid_bleu_at_T": {str(end): round(mean, 3) for end, mean in means.items()}}


def report(out: Path, seeds: list[int], ends: list[int]) -> dict:
    rows = read_curve(out, seeds)
    with open(out / "curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    endpoints: dict[int, dict[int, float]] = {}
    for row in rows:
        if row["run"].startswith("T") and row["step"] == int(row["run"][1:]):
            endpoints.setdefault(int(row["run"][1:]), {})[row["seed"]] = row["val_bleu"]
    complete = {end: by_seed for end, by_seed in endpoints.items() if end in ends and set(by_seed) == set(seeds)}
    if max(ends) not in complete:  # the plateau is the largest T's by the rule: no smaller one stands in
        missing = [s for s in seeds if s not in endpoints.get(max(ends), {})]
        raise SystemExit(f"the plateau needs T{max(ends)} of every seed (missing: seeds {missing}); train it first")
    with open(out / "endpoints.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["T", *[f"seed{s}_val_bleu" for s in seeds]])
        for end in sorted(complete):
            writer.writerow([end, *[complete[end][s] for s in seeds]])
    summary = {"seeds": seeds, "cooldown_fraction": COOLDOWN, "candidates": sorted(complete), **choose_t(complete)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(out, rows, seeds, summary)
    return summary


def plot(out: Path, rows: list[dict], seeds: list[int], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(seeds), figsize=(5 * len(seeds), 3.8), sharey=True, squeeze=False)
    for ax, seed in zip(axes[0], seeds):
        runs = sorted({r["run"] for r in rows if r["seed"] == seed}, key=lambda run: (run != "trunk", run))
        for run in runs:
            points = [(r["step"], r["val_bleu"]) for r in rows if r["seed"] == seed and r["run"] == run]
            ax.plot(*zip(*points), marker="o", markersize=3, label="held rate" if run == "trunk" else f"cooldown to {run[1:]}",
                    color="black" if run == "trunk" else None)
        ax.axhline(summary["plateau_valid_bleu"], color="grey", linestyle=":", label="plateau (mean of seeds)")
        ax.axvline(summary["T"], color="grey", linestyle="--", label=f"T = {summary['T']}")
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("valid BLEU (greedy)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Multi30k en→de, transformer_cpu: warmup-stable-decay, cooldown over the last 20 % of T")
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trunk", type=int, default=2400)
    parser.add_argument("--ends", type=int, nargs="+", default=[1000, 1500, 2000, 2500, 3000])
    parser.add_argument("--parallel", type=int, default=2, help="seeds trained side by side (1 = in a row)")
    parser.add_argument("--report", action="store_true", help="only read the logs and write the curve")
    args = parser.parse_args()
    if any(branch_point(end) % 200 or branch_point(end) > args.trunk for end in args.ends):
        raise SystemExit(f"every end's branch point (1 - {COOLDOWN}) * T must be a trunk checkpoint (a multiple of "
                         f"200 up to --trunk {args.trunk}); got {args.ends}")
    if not args.report:
        cores = len(os.sched_getaffinity(0))
        threads = max(1, cores // args.parallel)
        errors: list[BaseException] = []

        def work(seeds: list[int]) -> None:
            try:
                for seed in seeds:
                    train_seed(args.out, seed, args.trunk, args.ends, threads)
            except BaseException as error:  # noqa: BLE001 - reported after the other worker ends
                errors.append(error)

        groups = [args.seeds[i::args.parallel] for i in range(args.parallel)]
        workers = [threading.Thread(target=work, args=(group,)) for group in groups if group]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise SystemExit("; ".join(map(str, errors)))
    print(json.dumps(report(args.out, args.seeds, args.ends)))


if __name__ == "__main__":
    main()
