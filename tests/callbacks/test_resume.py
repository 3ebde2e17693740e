"""A run SIGKILLed mid-schedule and resumed ends bit-identical to an uninterrupted run."""

import subprocess
import sys

import torch

from lightning_slt.callbacks.base import session_of

from .tiny import REPO_ROOT


def _run(out, *args):
    return subprocess.run([sys.executable, "-m", "tests.callbacks._tiny_run", str(out), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_sigkill_mid_schedule_then_resume_matches_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _run(whole).returncode == 0
    crashed = _run(killed, "--kill-at", "9")  # between pruning steps 8 and 12, after θ3 was recorded
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert not (killed / "final.pt").exists()
    resumed = _run(killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = torch.load(whole / "final.pt"), torch.load(killed / "final.pt")
    for part in ("weights", "masks", "theta3"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][n], b[part][n]) for n in a[part]), part
    assert sum(int((~m).sum()) for m in a["masks"].values()) > 0
    assert session_of is not None
