"""BLEU against training time for a dense run: reads the run's CSVLogger metrics.csv and writes
``bleu_vs_time.png`` and ``bleu_vs_time.csv`` next to this script's output folder.

Training minutes come from ``TrainTimeBudget`` (validation decoding excluded; logged as
``time/train_minutes`` with every validation).

Usage: python results/baseline_curve.py RUN_DIR/metrics.csv OUT_DIR
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def read_curve(metrics_csv: Path) -> list[dict]:
    rows = list(csv.DictReader(open(metrics_csv)))
    minutes = {int(r["step"]): float(r["time/train_minutes"]) for r in rows if r.get("time/train_minutes")}
    validation = {int(r["step"]): float(r["time/validation_minutes"]) for r in rows if r.get("time/validation_minutes")}
    curve = []
    for row in rows:
        if row.get("val/bleu"):
            step = int(row["step"])
            near = min(minutes, key=lambda s: abs(s - step)) if minutes else None
            curve.append({"step": step, "train_minutes": minutes.get(near), "validation_minutes": validation.get(near),
                          "val_bleu": float(row["val/bleu"]), "val_chrf": float(row["val/chrf"])})
    return curve


def main(metrics_csv: str, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curve = read_curve(Path(metrics_csv))
    with open(out / "bleu_vs_time.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot([c["train_minutes"] for c in curve], [c["val_bleu"] for c in curve], marker="o")
    ax.set_xlabel("training wall time [min] (validation excluded)")
    ax.set_ylabel("valid BLEU (greedy)")
    ax.set_title("Multi30k en→de, transformer_cpu, 2 CPU cores")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "bleu_vs_time.png", dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:3])
