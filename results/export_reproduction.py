"""Copy an experiment's results (no checkpoints) into the repository, with where and when they ran.

Per run of the part's plan: ``metrics.json``, ``config.yaml`` (re-run with ``lightning-slt fit
--config``), the test hypotheses and references (re-score with sacrebleu) and each training log
``logs/version_N/metrics.csv``. Per part: ``experiment.json`` and the report (``results.*``,
``claims.md`` if written), plus ``provenance.json``: the commit of the code that trained it
(checked against HEAD), the commands, the machine(s), and the wall time of every run and of the
part. A run's time runs from its first log folder's ``config.yaml`` (written as its first sitting
starts) to its ``metrics.json`` (written as it ends); a run resumed in a later sitting is marked
``resumed`` and its span includes the pause. Checkpoints, θk, masks and tickets stay behind
(hundreds of MB per run).

Usage: python results/export_reproduction.py runs/experiments/reproduce_multi30k results/multi30k_reproduction \\
           --commit dd34e72 --command "lightning-slt experiment --config ... --part=p1_slt_mp" \\
           [--throughput "results/benchmarks/train_throughput_bf16.jsonl line 17"] [--note "..."]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from lightning_slt.atomic import read_json, write_json
from lightning_slt.experiments.report import headline_metric, part_folders, planned_metrics

ROOT = Path(__file__).resolve().parents[1]

RUN_FILES = ("metrics.json", "config.yaml", "test/hypotheses_test.txt", "test/references_test.txt",
             "test/metrics_test.json")
PART_FILES = ("experiment.json", "results.csv", "results.md", "bleu_vs_sparsity.png", "claims.md")
JOINT_FILES = ("parts.json", "results.csv", "results.md", "bleu_vs_sparsity.png", "claims.md")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)


def code_state(commit: str) -> dict:
    """The commit the runs name, HEAD, and the code files that differ between them (or from the
    working tree): results are only the current code's where that list is empty."""
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode:
        raise SystemExit(f"--commit {commit}: no such commit in {ROOT}; give the commit the runs were trained at")
    changed = _git("diff", "--name-only", commit, "--", "lightning_slt", "conf").stdout.split()
    return {"commit": _git("rev-parse", commit).stdout.strip(), "head": _git("rev-parse", "HEAD").stdout.strip(),
            "code_changed_since": changed}


def _run_record(part: Path, run: Path, metric: str = "bleu") -> dict:
    metrics = read_json(run / "metrics.json")
    starts = sorted(path.stat().st_mtime for path in run.glob("logs/version_*/config.yaml"))
    began = starts[0] if starts else None
    return {"run": str(run.relative_to(part)), "steps": metrics["steps"], f"test_{metric}": metrics["test"].get(metric),
            "sparsity_target": metrics["sparsity_target"], "sparsity": metrics["sparsity"],
            "fit_s": round(metrics["wall_time_s"], 1),  # the runner's: training and validation (every sitting's:
            # the Timer's record, since the runs carry one; before, the last sitting's fit)
            "wall_s": round((run / "metrics.json").stat().st_mtime - began, 1) if began else None,
            "resumed": len(starts) > 1, "started": began, "machine": metrics.get("machine")}


def export_part(part: Path, out: Path) -> dict:
    """Copy one part (or a single experiment) and return its provenance record."""
    manifest = read_json(part / "experiment.json")
    for name in PART_FILES:
        if (part / name).is_file():
            _copy(part / name, out / name)
    planned = planned_metrics(part, manifest) or sorted(part.glob("seed*/**/metrics.json"))
    runs = []
    for run in (path.parent for path in planned if path.is_file()):
        relative = run.relative_to(part)
        for name in RUN_FILES:
            if (run / name).is_file():
                _copy(run / name, out / relative / name)
        for log in sorted(run.glob("logs/version_*/metrics.csv")):
            _copy(log, out / relative / log.relative_to(run))
        runs.append(_run_record(part, run, headline_metric(manifest["config"])))
    machines = sorted({json.dumps(r.pop("machine"), sort_keys=True) for r in runs})
    if len(machines) > 1:
        print(f"warning: {part.name} ran on {len(machines)} machines; its comparisons mix them")
    starts = [r["started"] for r in runs if r["started"] is not None]
    ended = max(((part / r["run"] / "metrics.json").stat().st_mtime for r in runs), default=None)
    return {
        "machines": [json.loads(m) for m in machines],
        "finished": len(runs) == len(planned), "runs_finished": len(runs), "runs_planned": len(planned),
        "part_wall_s": round(ended - min(starts), 1) if starts and ended else None,
        "sum_of_run_wall_s": round(sum(r["wall_s"] or 0 for r in runs), 1),
        "runs": [{k: v for k, v in r.items() if k != "started"} for r in runs],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="the experiment's output_dir (one experiment, or one in parts)")
    parser.add_argument("out", type=Path, help="the folder under results/ to write")
    parser.add_argument("--commit", required=True, help="git commit of the code that trained it")
    parser.add_argument("--command", action="append", default=[], help="a command that produced it (repeat)")
    parser.add_argument("--throughput", help="the machine's benchmarks/train_throughput.py figure (where it is kept)")
    parser.add_argument("--note", help="how it ran, where the commands do not say (e.g. beside which other part)")
    args = parser.parse_args(argv)
    try:
        parts = part_folders(args.experiment)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    single = parts == [args.experiment]
    state = code_state(args.commit)
    if state["code_changed_since"]:
        print(f"note: lightning_slt/ or conf/ differ from {args.commit}: {', '.join(state['code_changed_since'])}")
    if not single:
        for name in JOINT_FILES:
            if (args.experiment / name).is_file():
                _copy(args.experiment / name, args.out / name)
    for part in parts:
        target = args.out if single else args.out / part.name
        record = export_part(part, target)
        export = shlex.join(["python", "results/export_reproduction.py", *(sys.argv[1:] if argv is None else argv)])
        provenance = {**state, "commands": args.command, "export": export, "train_throughput": args.throughput,
                      **({"note": args.note} if args.note else {}), **record}
        write_json(target / "provenance.json", provenance)
        wall = record["part_wall_s"]
        print(f"{part.name}: {record['runs_finished']} of {record['runs_planned']} runs"
              + (f", {wall / 60:.1f} min wall" if wall else "") + f" -> {target}")


if __name__ == "__main__":
    main()
