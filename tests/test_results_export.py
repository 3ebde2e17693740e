"""results/export_reproduction.py: what a committed result folder holds, what it leaves out, and
the wall times it reads from the files; results/check_reproduction.py. Budget: < 20 s."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
_spec = importlib.util.spec_from_file_location("export_reproduction", ROOT / "results" / "export_reproduction.py")
export_reproduction = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_reproduction)


def _export(experiment, out, capsys, commit=HEAD, *more: str) -> str:
    export_reproduction.main([str(experiment), str(out), "--commit", commit,
                              "--command", "lightning-slt experiment --part=p1", *more])
    return capsys.readouterr().out


def _sitting(run: Path, version: int, start: float, end: float | None = None) -> None:
    """One sitting of a run: its log folder's config.yaml at ``start`` (and metrics.json at ``end``)."""
    log = run / "logs" / f"version_{version}"
    log.mkdir(parents=True, exist_ok=True)
    (log / "config.yaml").write_text("{}\n")
    (log / "metrics.csv").write_text(f"step,val/bleu\n{version},1.0\n")
    os.utime(log / "config.yaml", (start, start))
    if end is not None:
        os.utime(run / "metrics.json", (end, end))


def test_export_copies_results_and_provenance_but_no_checkpoints(tmp_path, capsys):
    from tests.experiments.test_claims import _part

    experiment = tmp_path / "exp"
    part = _part(experiment, "p1", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.0, 8)})
    dense, slt = part / "seed0" / "dense", part / "seed0" / "dense" / "slt_0.90"
    (slt / "checkpoints").mkdir()
    (slt / "checkpoints" / "best.ckpt").write_bytes(b"x" * 100)
    (slt / "theta_k.pt").write_bytes(b"x")
    (slt / "config.yaml").write_text("model: {}\n")
    (part / "results.md").write_text("| table |\n")
    (experiment / "parts.json").write_text('{"parts": ["p1"]}')
    t = 1_700_000_000.0
    _sitting(dense, 0, t, t + 500)
    _sitting(slt, 0, t + 510)  # stopped, resumed in a second sitting
    _sitting(slt, 1, t + 2000, t + 2400)
    out = tmp_path / "committed"
    assert "p1: 2 of 2 runs, 40.0 min wall" in _export(experiment, out, capsys, HEAD, "--note", "beside p2")
    copied = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    run = "p1/seed0/dense/slt_0.90"
    assert {"parts.json", "p1/experiment.json", "p1/results.md", "p1/provenance.json", f"{run}/metrics.json",
            f"{run}/config.yaml", f"{run}/test/hypotheses_test.txt", f"{run}/logs/version_0/metrics.csv",
            f"{run}/logs/version_1/metrics.csv"} <= copied  # both sittings' training logs
    assert not [p for p in copied if p.endswith((".ckpt", ".pt", ".ticket"))]
    provenance = json.loads((out / "p1" / "provenance.json").read_text())
    assert (provenance["commit"], provenance["head"], provenance["finished"]) == (HEAD, HEAD, True)
    assert provenance["commands"] == ["lightning-slt experiment --part=p1"] and provenance["note"] == "beside p2"
    assert [(r["run"], r["test_bleu"], r["wall_s"], r["resumed"]) for r in provenance["runs"]] == [
        ("seed0/dense", 30.0, 500.0, False), ("seed0/dense/slt_0.90", 27.0, 1890.0, True)]
    assert (provenance["part_wall_s"], provenance["sum_of_run_wall_s"]) == (2400.0, 2390.0)


def test_export_of_an_unfinished_part_says_so_and_refuses_an_unknown_commit(tmp_path, capsys):
    from tests.experiments.test_claims import _part

    part = _part(tmp_path / "exp", "p1", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.0, 8)})
    (part / "seed0" / "dense" / "slt_0.90" / "metrics.json").unlink()  # still training
    assert "p1: 1 of 2 runs" in _export(part, tmp_path / "out", capsys)
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert (provenance["finished"], provenance["runs_finished"], provenance["runs_planned"]) == (False, 1, 2)
    with pytest.raises(SystemExit, match="no such commit"):
        _export(part, tmp_path / "out2", capsys, commit="0" * 40)
    assert not (tmp_path / "out2").exists()  # refused before anything is copied


def test_check_reproduction_rescores_with_sacrebleus_cli_and_counts_each_mask(tmp_path, capsys):
    """A run whose figures hold is ok; a reported BLEU the hypotheses do not give, or a mask one entry
    off its target, fails the check (exit 1), naming the run."""
    import torch

    spec = importlib.util.spec_from_file_location("check_reproduction", ROOT / "results" / "check_reproduction.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(20)]
    for name, hyps, target, pruned in (("dense", refs, 0.0, None), ("dense/slt_0.50", refs, 0.5, 50),
                                       ("dense/slt_0.50/slt_0.80", ["eine katze ."] * 20, 0.8, 79)):
        run = tmp_path / "seed0" / name
        (run / "test").mkdir(parents=True)
        (run / "test" / "references_test.txt").write_text("".join(r + "\n" for r in refs))
        (run / "test" / "hypotheses_test.txt").write_text("".join(h + "\n" for h in hyps))
        (run / "metrics.json").write_text(json.dumps({"run": name, "seed": 0, "sparsity_target": target,
                                                      "test": {"bleu": 100.0}}))
        if pruned is not None:
            torch.save({"w": torch.arange(100) >= pruned}, run / "mask.pt")
    assert check.main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok   dense (seed 0)") and lines[1].startswith("ok   dense/slt_0.50 (seed 0)")
    assert lines[2].startswith("FAIL dense/slt_0.50/slt_0.80") and "1 off target" in lines[2]
    assert lines[-1] == "2 of 3 runs check out"
