"""Copy an experiment's results (no checkpoints) into the repository, with where and when they ran.

Per run: ``metrics.json``, ``config.yaml`` (re-run with ``lightning-slt fit --config``), the test
hypotheses and references (re-score with sacrebleu) and the training log ``metrics.csv``. Per part:
``experiment.json`` and the report (``results.*``, ``claims.md`` if written), plus
``provenance.json``: the git commit of the code that trained it, the machine, and the wall time of
every run and of the part, from the files' own times (a run from its ``config.yaml``, written as it
starts, to its ``metrics.json``, written as it ends; a part from its ``experiment.json`` to its
``results.md``). Checkpoints, θk, masks and tickets stay behind (hundreds of MB per run).

Usage: python results/export_reproduction.py runs/experiments/reproduce_multi30k results/multi30k_reproduction \\
           --commit dd34e72 [--throughput results/benchmarks/train_throughput_bf16.jsonl:17]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

RUN_FILES = ("metrics.json", "config.yaml", "test/hypotheses_test.txt", "test/references_test.txt",
             "test/metrics_test.json")
PART_FILES = ("experiment.json", "results.csv", "results.md", "bleu_vs_sparsity.png", "claims.md", "parts.json")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _runs(part: Path) -> list[Path]:
    return sorted(path.parent for path in part.glob("seed*/**/metrics.json"))


def export_part(part: Path, out: Path, commit: str, throughput: str | None) -> dict:
    for name in PART_FILES:
        if (part / name).is_file():
            _copy(part / name, out / name)
    runs, machine = [], None
    for run in _runs(part):
        relative = run.relative_to(part)
        for name in RUN_FILES:
            if (run / name).is_file():
                _copy(run / name, out / relative / name)
        for log in sorted(run.glob("logs/*/metrics.csv")):
            _copy(log, out / relative / "metrics.csv")  # the training curve (one version per run)
        metrics = json.loads((run / "metrics.json").read_text())
        machine = machine or metrics.get("machine")
        began = (run / "config.yaml").stat().st_mtime if (run / "config.yaml").is_file() else None
        runs.append({"run": str(relative), "fit_s": round(metrics["wall_time_s"], 1),
                     "wall_s": round((run / "metrics.json").stat().st_mtime - began, 1) if began else None,
                     "steps": metrics["steps"], "test_bleu": metrics["test"]["bleu"],
                     "sparsity_target": metrics["sparsity_target"], "sparsity": metrics["sparsity"]})
    started = (part / "experiment.json").stat().st_mtime
    ended = (part / "results.md").stat().st_mtime if (part / "results.md").is_file() else None
    provenance = {
        "commit": commit, "machine": machine, "train_throughput": throughput,
        "part_wall_s": round(ended - started, 1) if ended else None, "finished": ended is not None,
        "runs": runs,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    return provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="the experiment's output_dir (a part folder, or one of parts)")
    parser.add_argument("out", type=Path, help="the folder under results/ to write")
    parser.add_argument("--commit", required=True, help="git commit of the code that trained it")
    parser.add_argument("--throughput", help="the train_throughput.py figure of the machine (file:line)")
    args = parser.parse_args()
    dirty = subprocess.run(["git", "status", "--porcelain", "lightning_slt"], capture_output=True, text=True).stdout
    if dirty:
        print(f"note: lightning_slt/ has uncommitted changes now; the runs record commit {args.commit}")
    parts = [args.experiment] if (args.experiment / "experiment.json").is_file() else sorted(
        p for p in args.experiment.iterdir() if (p / "experiment.json").is_file())
    if not parts:
        raise SystemExit(f"{args.experiment} holds no experiment.json, nor parts with one")
    for name in ("parts.json", "results.csv", "results.md", "bleu_vs_sparsity.png", "claims.md"):
        if parts != [args.experiment] and (args.experiment / name).is_file():
            _copy(args.experiment / name, args.out / name)
    for part in parts:
        target = args.out if part == args.experiment else args.out / part.name
        provenance = export_part(part, target, args.commit, args.throughput)
        wall = provenance["part_wall_s"]
        print(f"{part.name}: {len(provenance['runs'])} runs, "
              + (f"{wall / 60:.1f} min wall" if wall else "not finished") + f" -> {target}")


if __name__ == "__main__":
    main()
