"""Check an experiment's finished runs against what they report: sacreBLEU's own CLI re-scores each
run's test hypotheses to its metrics.json BLEU, and each pruned tensor of its mask.pt has exactly
round(target × numel) entries pruned (runs folders only: exported folders hold no masks).

Usage: python results/check_reproduction.py runs/experiments/reproduce_multi30k_converged
Exit status 1 if any run disagrees; one line per run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from lightning_slt.atomic import read_json


def check_run(run: Path) -> tuple[bool, str]:
    """Whether the run's figures hold, and its line."""
    metrics = read_json(run / "metrics.json")
    target = metrics.get("sparsity_target") or 0.0
    masks = torch.load(run / "mask.pt", weights_only=True) if (run / "mask.pt").is_file() else {}
    off = [name for name, mask in masks.items() if int((~mask).sum()) != round(target * mask.numel())]
    hypotheses, references = run / "test" / "hypotheses_test.txt", run / "test" / "references_test.txt"
    scored = subprocess.run([sys.executable, "-m", "sacrebleu", str(references), "-i", str(hypotheses), "-m", "bleu",
                             "-b", "-w", "4"], capture_output=True, text=True, check=True).stdout.strip()
    reported = metrics["test"]["bleu"]
    ok = abs(float(scored) - reported) < 5e-4 and not off
    return ok, (f"{'ok  ' if ok else 'FAIL'} {metrics['run']} (seed {metrics['seed']}): target {target:.2f}, "
                f"{len(masks)} masks, {len(off)} off target; test BLEU {reported:.4f}, sacrebleu CLI {scored}")


def main(argv: list[str] | None = None) -> int:
    (folder,) = argv if argv is not None else sys.argv[1:]
    runs = sorted(path.parent for path in Path(folder).glob("**/metrics.json") if (path.parent / "test").is_dir())
    if not runs:
        raise SystemExit(f"{folder}: no finished run (metrics.json beside a test/ folder)")
    results = [check_run(run) for run in runs]
    for _, line in results:
        print(line)
    failed = sum(not ok for ok, _ in results)
    print(f"{len(runs) - failed} of {len(runs)} runs check out")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
