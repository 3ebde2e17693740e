"""SIGTERM: ``fit`` and ``experiment`` stop at a step boundary with every checkpoint whole and exit
143 (Lightning alone exits 0, which a scheduler takes for a finished run); the same command then
resumes and finishes.

Each SIGTERM a test survives is one kill of the suite's figures line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_slt.cli import SIGTERM_EXIT

from .test_kills import _env, _experiment_config
from .tiny import REPO_ROOT, cli_config, file_states

# Training and experiment processes stopped by SIGTERM and resumed.
pytestmark = pytest.mark.slow

MAX_STEPS = 12


def _fit(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lightning_slt.cli", "fit", "--config", str(config), *args],
                          cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)


def _terminating_config(tmp_path: Path, data_root, spm_cache, step: int, phase: str) -> Path:
    config = cli_config(tmp_path, data_root, spm_cache, max_steps=MAX_STEPS, limit_val_batches=None,
                        val_check_interval=4, check_val_every_n_epoch=None)
    settings = yaml.safe_load(config.read_text())
    settings["trainer"]["callbacks"][0]["init_args"].update(every_n_train_steps=1, save_top_k=0)
    signal_at = {"class_path": "tests.reliability._signals.SignalAt", "init_args": {"step": step, "phase": phase}}
    (tmp_path / "term.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": [signal_at]}}))
    config.write_text(yaml.safe_dump(settings))
    return config


@pytest.mark.parametrize(("step", "phase"), [(5, "train"), (8, "validation")], ids=["mid_training", "mid_validation"])
def test_fit_stopped_by_sigterm_exits_143_and_resumes(step, phase, tmp_path, data_root, spm_cache, tally):
    config = _terminating_config(tmp_path, data_root, spm_cache, step, phase)
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    stopped = _fit(config, "--config", str(tmp_path / "term.yaml"))
    assert stopped.returncode == SIGTERM_EXIT, stopped.stderr[-3000:]
    assert "stopped by SIGTERM before the end" in stopped.stderr
    assert f"resume with the same command and --ckpt_path {last}" in stopped.stderr  # the same command alone starts anew
    saved = torch.load(last, weights_only=True)["global_step"]  # whole: it loads
    assert step <= saved < MAX_STEPS
    assert not list(last.parent.glob(".*.tmp"))  # no half-written checkpoint beside it
    resumed = _fit(config, "--ckpt_path", str(last))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == MAX_STEPS
    tally("kills")


def test_experiment_stopped_by_sigterm_exits_143_and_resumes(tmp_path, spm_cache, tally):
    config = _experiment_config(tmp_path, "exp", spm_cache)
    dense, slt = tmp_path / "exp" / "seed0" / "dense", tmp_path / "exp" / "seed0" / "dense" / "slt_0.50"
    stopped = subprocess.run([sys.executable, "-m", "tests.reliability._chain_run", str(config), "--term-in",
                              "dense/slt_0.50:4"], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert stopped.returncode == SIGTERM_EXIT, stopped.stderr[-3000:]
    assert "stopped by SIGTERM" in stopped.stderr
    assert (dense / "metrics.json").is_file() and not (slt / "metrics.json").exists()  # not taken for finished
    assert 4 <= torch.load(slt / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] < 10
    finished = file_states(dense / "metrics.json", dense / "checkpoints")
    resumed = subprocess.run([sys.executable, "-m", "tests.reliability._chain_run", str(config)], cwd=REPO_ROOT,
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert file_states(dense / "metrics.json", dense / "checkpoints") == finished
    assert torch.load(slt / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    assert (slt / "metrics.json").is_file() and (tmp_path / "exp" / "results.csv").is_file()
    tally("kills")
