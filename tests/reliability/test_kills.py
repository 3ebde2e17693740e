"""Faults: processes killed hard (SIGKILL) and restarted end exactly where an uninterrupted run ends.

Each SIGKILL a test survives is one kill of the suite's figures line.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .tiny import REPO_ROOT, file_states
from ._train_run import MAX_STEPS, PHASES

# Training and experiment processes killed and resumed.
pytestmark = pytest.mark.slow

KILL_SEED = 20240611  # the kill points are a seeded random choice, reproducible from this number
TINY_EXPERIMENT_BASE = REPO_ROOT / "tests" / "experiments" / "tiny_base.yaml"


def kill_points(seed: int = KILL_SEED, count: int = 3) -> list[tuple[int, str]]:
    """``count`` (step, phase) pairs: distinct random steps inside the run, in increasing order,
    each phase of ``_train_run.PHASES`` once, in random order."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(2, MAX_STEPS), count))
    phases = list(PHASES)
    rng.shuffle(phases)
    return list(zip(steps, phases))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def _train(out: Path, data_root: Path, spm_cache: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability._train_run", str(out), str(data_root),
                             str(spm_cache), *args], cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, expected: int) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == expected, stderr[-3000:]


def _metric_history(log_root: Path) -> dict[tuple[str, str], str]:
    """(step, metric) -> value over every CSV log version in order: a resumed run's replay of the
    steps after its checkpoint overwrites what the killed run logged for them."""
    history = {}
    for version in sorted(log_root.glob("version_*"), key=lambda p: int(p.name.split("_")[1])):
        with open(version / "metrics.csv") as handle:
            for row in csv.DictReader(handle):
                history.update({(row["step"], key): value for key, value in row.items() if value and key != "step"})
    return history


def test_kill_points_are_a_seeded_random_choice():
    points = kill_points()
    assert points == kill_points() and len({step for step, _ in points}) == 3
    assert sorted(phase for _, phase in points) == sorted(PHASES)
    assert all(2 <= step < MAX_STEPS for step, _ in points)


def test_training_killed_three_times_ends_bit_identical_to_an_uninterrupted_run(tmp_path, data_root, spm_cache, tally):
    reference = _train(tmp_path / "whole", data_root, spm_cache)  # runs alongside the killed chain
    out = tmp_path / "killed"
    last = out / "ckpt" / "last.ckpt"
    for attempt, (step, phase) in enumerate(kill_points()):
        _finish(_train(out, data_root, spm_cache, *(["--resume"] if attempt else []), "--kill", f"{step}:{phase}"),
                -signal.SIGKILL)
        assert not (out / "final.pt").exists()
        # Checkpoints are written whole or not at all: after a kill halfway through writing the
        # checkpoint of step S, last.ckpt still holds step S - 1 (the half-written file is a stray temp).
        saved = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
        assert saved == (step - 1 if phase == "checkpoint_write" else step), (step, phase)
        strays = list(last.parent.glob(".last.ckpt.*.tmp"))
        assert bool(strays) == (phase == "checkpoint_write")
        for stray in strays:
            stray.unlink()
    _finish(_train(out, data_root, spm_cache, "--resume"), 0)
    _finish(reference, 0)

    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)
    resumed = torch.load(out / "final.pt", weights_only=True)
    assert (resumed["global_step"], resumed["epoch"]) == (whole["global_step"], whole["epoch"])
    for part in ("weights", "masks", "theta6"):
        assert resumed[part].keys() == whole[part].keys(), part
        for name, tensor in whole[part].items():
            assert torch.equal(resumed[part][name], tensor), (part, name)
    pruned = sum(int((~mask).sum()) for mask in whole["masks"].values())
    assert pruned == sum(round(0.7 * mask.numel()) for mask in whole["masks"].values())  # the final sparsity
    assert resumed["metrics"] == whole["metrics"] and {"val/bleu", "val/loss", "train/loss"} <= set(whole["metrics"])
    history = _metric_history(tmp_path / "whole" / "logs")
    assert _metric_history(out / "logs") == history
    assert sum(key == "train/loss" for _, key in history) == MAX_STEPS  # every step's loss, once
    epoch_of = {int(step): int(value) for (step, key), value in history.items() if key == "epoch"}
    assert sorted(set(epoch_of.values())) == [0, 1, 2]  # three epochs of 14 batches: 0-13, 14-27, 28-35
    assert all(epoch_of[step - 1] == epoch_of[step] for step, _ in kill_points())  # every kill is mid-epoch
    tally("kills", 3)


def _chain(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability._chain_run", str(config), *args], cwd=REPO_ROOT,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _experiment_config(tmp_path: Path, name: str, spm_cache: Path) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"base: [{TINY_EXPERIMENT_BASE}]\nmethods: [slt]\ntargets: [0.5]\n"
                    f"output_dir: {tmp_path / name}\nbase_args: ['--data.cache_dir={spm_cache}']\n")
    return path


def _versions(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "logs").iterdir())


def test_experiment_killed_between_runs_and_during_a_run_never_redoes_a_finished_run(tmp_path, spm_cache, tally):
    reference = _chain(_experiment_config(tmp_path, "whole", spm_cache))
    config = _experiment_config(tmp_path, "killed", spm_cache)
    dense, slt = tmp_path / "killed" / "seed0" / "dense", tmp_path / "killed" / "seed0" / "dense" / "slt_0.50"

    _finish(_chain(config, "--kill-after", "dense"), -signal.SIGKILL)  # between the two runs
    assert (dense / "metrics.json").is_file() and not (slt / "config.yaml").exists()
    finished = file_states(dense / "metrics.json", dense / "mask.pt", dense / "theta_k.pt", dense / "checkpoints")
    assert _versions(dense) == ["version_0"]

    _finish(_chain(config, "--kill-in", "dense/slt_0.50:6"), -signal.SIGKILL)  # during the second run
    assert file_states(dense / "metrics.json", dense / "mask.pt", dense / "theta_k.pt", dense / "checkpoints") == finished
    stopped = torch.load(slt / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped["global_step"] == 6
    assert not (slt / "metrics.json").exists()
    # the killed sitting's training time, as its Timer kept it, made 1000 s longer: the resumed
    # sitting's Timer goes on from it, and the run's wall time is what it kept in the end
    trained = stopped["callbacks"]["Timer"]["time_elapsed"]["train"] + 1000.0
    stopped["callbacks"]["Timer"]["time_elapsed"]["train"] = trained
    torch.save(stopped, slt / "checkpoints" / "last.ckpt")

    _finish(_chain(config), 0)
    final = torch.load(slt / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["Timer"]["time_elapsed"]
    wall_time = json.loads((slt / "metrics.json").read_text())["wall_time_s"]
    assert trained < final["train"] == wall_time < trained + 300  # the earlier sitting counted once
    _finish(reference, 0)
    assert file_states(dense / "metrics.json", dense / "mask.pt", dense / "theta_k.pt", dense / "checkpoints") == finished
    assert _versions(dense) == ["version_0"]  # never trained, validated or tested again
    assert _versions(slt) == ["version_0", "version_1"]  # the killed attempt and the resumed one
    with open(slt / "logs" / "version_1" / "metrics.csv") as handle:
        resumed_steps = sorted({int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")})
    assert resumed_steps == [6, 7, 8, 9]  # it went on from its step-6 checkpoint, not from the start
    whole_root = tmp_path / "whole" / "seed0" / "dense" / "slt_0.50"
    for name in ("last.ckpt", "best.ckpt"):
        ours = torch.load(slt / "checkpoints" / name, weights_only=True)
        theirs = torch.load(whole_root / "checkpoints" / name, weights_only=True)
        assert ours["global_step"] == theirs["global_step"]
        assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items()), name
        assert all(torch.equal(ours["lightning_slt"]["masks"][k], v) for k, v in theirs["lightning_slt"]["masks"].items())

    def rows(root: Path) -> list[dict]:
        with open(root / "results.csv") as handle:
            return [{k: v for k, v in row.items() if "wall_time" not in k} for row in csv.DictReader(handle)]

    assert rows(tmp_path / "killed") == rows(tmp_path / "whole") and len(rows(tmp_path / "whole")) == 2
    tally("kills", 2)
