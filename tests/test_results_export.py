"""results/export_reproduction.py: what a committed result folder holds, and what it leaves out. Budget: < 5 s."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_export_copies_results_and_provenance_but_no_checkpoints(tmp_path):
    from tests.experiments.test_claims import _part

    experiment = tmp_path / "exp"
    part = _part(experiment, "p1", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.0, 8)})
    run = part / "seed0" / "dense" / "slt_0.90"
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x" * 100)
    (run / "theta_k.pt").write_bytes(b"x")
    (run / "config.yaml").write_text("model: {}\n")
    (part / "results.md").write_text("| table |\n")
    (experiment / "parts.json").write_text('{"parts": ["p1"]}')
    out = tmp_path / "committed"
    done = subprocess.run([sys.executable, str(ROOT / "results" / "export_reproduction.py"), str(experiment), str(out),
                           "--commit", "abc1234"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "p1: 2 runs" in done.stdout
    copied = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"parts.json", "p1/experiment.json", "p1/results.md", "p1/provenance.json",
            "p1/seed0/dense/slt_0.90/metrics.json", "p1/seed0/dense/slt_0.90/config.yaml",
            "p1/seed0/dense/slt_0.90/test/hypotheses_test.txt"} <= copied
    assert not [p for p in copied if p.endswith((".ckpt", ".pt", ".ticket"))]
    provenance = json.loads((out / "p1" / "provenance.json").read_text())
    assert provenance["commit"] == "abc1234" and provenance["finished"]
    assert [(r["run"], r["test_bleu"]) for r in provenance["runs"]] == [("seed0/dense", 30.0),
                                                                         ("seed0/dense/slt_0.90", 27.0)]
    assert provenance["runs"][1]["wall_s"] is not None and provenance["runs"][0]["wall_s"] is None
