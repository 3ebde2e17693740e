"""End to end: every method on a tiny model and 300 Multi30k pairs, resumable, reported."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_slt.experiments import ExperimentConfig, plan, run_experiment
from lightning_slt.experiments.config import METHOD_NAMES

HERE = Path(__file__).parent
BASE = str(HERE / "tiny_base.yaml")
REPO_ROOT = HERE.parents[1]


def _config(output_dir, methods, targets=(0.5, 0.6, 0.8), **kwargs):
    return ExperimentConfig(base=[BASE], methods=list(methods), output_dir=str(output_dir), targets=list(targets), **kwargs)


@pytest.fixture(scope="module")
def all_methods(tmp_path_factory, data_root):
    config = _config(tmp_path_factory.mktemp("all") / "exp", METHOD_NAMES)
    run_experiment(config)
    return config


def _masks(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False).get("lightning_slt", {}).get("masks", {})


def test_every_run_finished_once_with_its_lineage(all_methods):
    _, _, runs = plan(all_methods)
    root = Path(all_methods.output_dir) / "seed0"
    finished = {str(p.parent.relative_to(root)) for p in root.glob("**/metrics.json")}
    assert finished == {run.name for run in runs}
    for run in runs:  # trained once: one logger version, no second attempt
        assert [p.name for p in (root / run.name / "logs").iterdir()] == ["version_0"], run.name
        config = (root / run.name / "config.yaml").read_text()
        if run.parent:
            assert f"source: {root / run.parent / 'checkpoints' / 'last.ckpt'}" in config or run.kind == "random_mask"
        if run.weights_from and run.kind != "mp" or run.parent:
            assert f"source: {root / run.weights_from / 'checkpoints' / 'last.ckpt'}" in config, run.name
    lt = (root / "dense/lt_0.50/lt_0.60/config.yaml").read_text()
    assert "step: 0\n      source: " + str(root / "dense/checkpoints/last.ckpt") in lt


def test_every_checkpoint_has_exactly_its_target_sparsity_and_masks_nest(all_methods):
    _, _, runs = plan(all_methods)
    root = Path(all_methods.output_dir) / "seed0"
    for run in runs:
        for ckpt in (root / run.name / "checkpoints").glob("*.ckpt"):
            masks = _masks(ckpt)
            if run.kind == "dense":
                assert masks == {}
                continue
            assert masks, ckpt
            for name, mask in masks.items():
                assert int((~mask).sum()) == round(run.sparsity * mask.numel()), (ckpt, name)
            weights = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
            assert all((weights[n][~m] == 0).all() for n, m in masks.items())
        if run.parent and run.kind not in ("random_mask",) and run.parent != "dense" and not run.parent.startswith("mp_"):
            parent = _masks(root / run.parent / "checkpoints" / "last.ckpt")
            child = _masks(root / run.name / "checkpoints" / "last.ckpt")
            assert all(not (child[n] & ~parent[n]).any() for n in parent), f"{run.name} not nested in {run.parent}"


def test_report_has_one_row_per_method_and_sparsity(all_methods):
    out = Path(all_methods.output_dir)
    rows = list(csv.DictReader(open(out / "results.csv")))
    expected = {(m, s) for m in METHOD_NAMES for s in (0.0, 0.5, 0.6, 0.8)}
    expected -= {("mp_slt", 0.5)} - {("mp_slt", 0.5)}
    got = {(r["method"], float(r["sparsity"])) for r in rows}
    assert got == expected
    assert len(rows) == len(expected)
    table = (out / "results.md").read_text()
    assert table.count("\n| 80% |") == 1 and "SLT-MP BLEU" in table and "random sign TER" in table
    assert (out / "bleu_vs_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    for row in rows:
        assert float(row["measured_sparsity"]) == pytest.approx(float(row["sparsity"]), abs=1e-3)  # per-tensor rounding
        assert int(row["lineage_steps"]) >= int(row["steps"]) == 10


def test_bad_input_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        _config(tmp_path / "x", ["slt", "slt2"])
    with pytest.raises(ValueError, match="strictly increasing"):
        _config(tmp_path / "x", ["slt"], targets=(0.6, 0.5))
    with pytest.raises(ValueError, match="beyond the run's max_steps 10"):
        run_experiment(_config(tmp_path / "x", ["slt"], rewind_step=11))
    assert not (tmp_path / "x").exists()


def test_a_directory_holding_another_experiment_is_refused(all_methods, tmp_path):
    with pytest.raises(ValueError, match="holds a different experiment .*base_args"):
        run_experiment(_config(all_methods.output_dir, ["slt"], base_args=["--model.lr=0.001"]))


def _launch(config_path, env):
    return subprocess.Popen([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(config_path)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_experiment_killed_mid_run_resumes_to_the_same_results(tmp_path, data_root):
    env = {**os.environ, "LIGHTNING_SLT_DATA": str(data_root)}
    results = {}
    for label in ("whole", "killed"):
        config = tmp_path / f"{label}.yaml"
        config.write_text(f"base: [{BASE}]\nmethods: [slt]\ntargets: [0.5, 0.6]\noutput_dir: {tmp_path / label}\n")
        if label == "killed":
            process = _launch(config, env)
            marker = tmp_path / label / "seed0" / "dense" / "slt_0.50" / "checkpoints" / "last.ckpt"
            deadline = time.time() + 240
            while not marker.exists() and process.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert process.poll() is None, process.stderr.read()[-3000:]
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert not (marker.parent.parent / "metrics.json").exists()  # killed during the run
        finished = _launch(config, env)
        assert finished.wait(timeout=600) == 0, finished.stderr.read()[-3000:]
        rows = list(csv.DictReader(open(tmp_path / label / "results.csv")))
        results[label] = [{k: v for k, v in r.items() if "wall_time" not in k} for r in rows]
    assert results["whole"] == results["killed"]
