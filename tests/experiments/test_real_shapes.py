"""Every method and control through ``lightning-slt experiment`` on the shipped ``transformer_cpu``
shapes (conf/multi30k_cpu.yaml as it is, a few steps a run).

Tiny models round per-tensor counts differently from the real ones and hid a crash of SLT-MP
(the paper's own method) that the shipped model hit at once; this test runs the real shapes so a
defect of that kind cannot hide again. Budget: ~3 min (about 20 runs of 4 steps on 2 threads, 8 validation
and 8 test sentences, greedy decoding of at most 8 tokens).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_slt.experiments import load_config, plan
from lightning_slt.experiments.config import METHOD_NAMES
from lightning_slt.model.presets import transformer_cpu
from lightning_slt.artifacts import load_source

REPO_ROOT = Path(__file__).resolve().parents[2]
# The module fixture trains ~20 runs of the shipped shapes: 221 s alone on an AVX2-only EPYC, past
# pytest's 600 s there when another job shared the two cores. Its own bound, not the suite's.
pytestmark = pytest.mark.timeout(1500)
CONTROLS = ("random_mask", "random_reinit", "random_sign")
SHORT = [
    "--trainer.max_steps=4", "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=1",
    "--model.warmup_steps=1", "--model.beam_size=1", "--model.max_len_a=0", "--model.max_len_b=8",
    "--data.valid_subset=8", "--data.test_subset=8", "--data.max_tokens=1024",
]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("real_shapes")
    config = folder / "experiment.yaml"
    config.write_text(json.dumps({
        "base": [str(REPO_ROOT / "conf/multi30k_cpu.yaml")], "base_args": SHORT, "methods": list(METHOD_NAMES),
        "targets": [0.6, 0.8], "output_dir": str(folder / "exp"), "rewind_step": 2,
    }))
    # two threads: pytest waits meanwhile, and the shipped shapes are big enough to use both cores
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(config)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1400)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = load_config(config)
    return loaded, Path(loaded.output_dir) / "seed0", done.stderr


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_every_method_and_control_finishes_every_run(experiment):
    config, root, _ = experiment
    _, _, runs = plan(config)
    assert {r.kind for r in runs} == {"dense", "mp", "lt", "slt", "clt", *CONTROLS}
    assert {m for r in runs for m in r.methods} == set(METHOD_NAMES)
    for run in runs:
        assert (root / run.name / "metrics.json").is_file(), f"{run.name} did not finish"
    assert (root / "dense/slt_0.50/slt_0.60/mp_0.80/metrics.json").is_file()  # SLT-MP at real shapes


def test_every_checkpoint_has_its_target_sparsity_per_tensor(experiment):
    config, root, _ = experiment
    _, _, runs = plan(config)
    shapes = {f"model.{n}": p.numel() for n, p in _shapes().items()}
    for run in runs:
        for ckpt in (root / run.name / "checkpoints").glob("*.ckpt"):
            state = _state(ckpt)
            masks = (state.get("lightning_slt") or {}).get("masks") or {}
            if run.kind == "dense":
                assert masks == {}, ckpt
                continue
            assert set(masks) == {n for n in shapes if n.endswith("weight") and "norm" not in n}, ckpt
            for name, mask in masks.items():
                assert int((~mask).sum()) == round(run.sparsity * shapes[name]), (ckpt.name, run.name, name)
                assert int((state["state_dict"][name][~mask] != 0).sum()) == 0


def test_no_control_starts_a_kept_weight_at_zero(experiment):
    config, root, _ = experiment
    _, _, runs = plan(config)
    for run in runs:
        if run.kind == "dense" or (run.kind == "mp" and run.parent is None):
            continue  # no mask at the start
        ticket = _state(root / run.name / "checkpoints/last.ckpt")["lightning_slt"]["ticket"]
        assert ticket["kept"] > 0 and ticket["kept_zero"] == 0, (run.name, ticket)


def test_random_mask_control_matches_the_slt_round_per_tensor_and_starts_from_dense_theta_k(experiment):
    config, root, _ = experiment
    for control, slt in (("dense/random_mask_0.60", "dense/slt_0.60"),
                         ("dense/slt_0.60/random_mask_0.80", "dense/slt_0.60/slt_0.80")):
        ours = _state(root / control / "checkpoints/last.ckpt")["lightning_slt"]["masks"]
        theirs = _state(root / slt / "checkpoints/last.ckpt")["lightning_slt"]["masks"]
        for name in theirs:
            assert int(ours[name].sum()) == int(theirs[name].sum()), name
        overlap = sum(int((ours[n] & theirs[n]).sum()) for n in theirs) / sum(int(m.sum()) for m in theirs.values())
        assert overlap < 0.5, overlap  # drawn over the whole tensor, not inside the parent's mask
        config_text = (root / control / "config.yaml").read_text()
        assert f"source: {root / 'dense/checkpoints/last.ckpt'}" in config_text


def test_random_reinit_draws_each_tensor_from_the_models_own_initialiser(experiment):
    """θk of the re-init control (2 steps at warm-up's tiny learning rate from its start) has the
    std of the model's initialiser per tensor: N(0, d^-1/2) for the tied embedding, fan_avg uniform
    for linear weights; Glorot for the embedding would be 4x smaller."""
    _, root, log = experiment
    assert "RandomReinit drew" in log and "Transformer.reset_parameters" in log
    source = load_source(root / "dense/slt_0.60/random_reinit_0.80/checkpoints/last.ckpt")
    theta_k, masks = source.snapshots[2], source.masks
    for name, mask in masks.items():
        rows, cols = mask.shape
        expected = cols ** -0.5 if "embed" in name else math.sqrt(6 / (rows + cols)) / math.sqrt(3)
        kept = theta_k[name][mask].float()
        sigma = expected / math.sqrt(2 * kept.numel())  # standard error of a sample std
        assert abs(float(kept.std()) - expected) < 6 * sigma + 0.01 * expected, (name, float(kept.std()), expected)


def _shapes() -> dict[str, torch.Tensor]:
    from lightning_slt.model.transformer import Transformer

    with torch.device("meta"):
        model = Transformer(transformer_cpu(vocab_size=8000))
    return dict(model.named_parameters())
