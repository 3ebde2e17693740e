"""Pruning callbacks under FSDP2 (``fully_shard`` + Lightning's ModelParallelStrategy, 2 CPU processes).

Every parameter is a DTensor shard there; the masks must be exactly those one process computes
from the same weights (exact counts over the whole tensor, the same tie-break), pruned entries
exactly zero, their gradients zero as the optimizer gets them and their Adam moments zero.
The runs are in tests/callbacks/_fsdp2_run.py; this process compares with one-process math.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_slt import WeightRewind
from lightning_slt.artifacts import load_source, read_checkpoint
from lightning_slt.export.checkpoint import export_checkpoint
from lightning_slt.pruning import cubic_sparsity, magnitude_masks, random_masks

from ._fsdp2_run import MLP
from .tiny import REPO_ROOT, make_trainer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
MATRICES = ("net.0.weight", "net.2.weight", "net.4.weight")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fsdp2")
    # The SLT round's source: a one-process dense run recording θ2, saved as a Lightning checkpoint.
    torch.manual_seed(0)
    trainer = make_trainer(6, [WeightRewind(step=2)], enable_checkpointing=False)
    trainer.fit(MLP(shard=False))
    source = folder / "dense.ckpt"
    trainer.save_checkpoint(source)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "tests.callbacks._fsdp2_run", str(folder), str(source)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    names = ("gmp", "gmp_global", "slt", "clt", "random_mask", "random_reinit", "uninterrupted", "stopped", "resumed", "resumed_full")
    out = {name: torch.load(folder / f"{name}.pt", weights_only=True) for name in names}
    out["stopped_checkpoint"] = folder / "stopped.ckpt"
    out["stopped_full_checkpoint"] = folder / "stopped_full.ckpt"
    out["with_optimizer"] = torch.load(folder / "with_optimizer.ckpt" / "meta.pt", weights_only=True)
    out["restored_exp_avg"] = torch.load(folder / "restored_exp_avg.pt", weights_only=True)
    out["source"] = torch.load(source, weights_only=True)
    return out


def _counts(masks: dict) -> dict[str, int]:
    return {name: int((~masks[name]).sum()) for name in MATRICES}


def test_every_parameter_was_a_dtensor_shard(runs):
    assert all(runs[name]["sharded"] for name in ("gmp", "slt", "random_mask"))


def test_gmp_prunes_exactly_80_percent_per_matrix_with_one_process_masks(runs):
    gmp = runs["gmp"]
    final = gmp["final"]["masks"]
    assert _counts(final) == {n: round(0.8 * final[n].numel()) for n in MATRICES}
    previous = None
    for step in (2, 4):  # the schedule's pruning steps (end_step=4, frequency=2)
        weights = {n: gmp["before"][step][n] for n in MATRICES}
        expected = magnitude_masks(weights, cubic_sparsity(step, 0.8, 0.0, 0, 4), current=previous)
        assert all(torch.equal(gmp["after"][step][n], expected[n]) for n in MATRICES), step
        previous = expected
    assert all(torch.equal(final[n], previous[n]) for n in MATRICES)  # held after the ramp
    assert all(int(gmp["final"]["weights"][n][~final[n]].count_nonzero()) == 0 for n in MATRICES)  # pruned = 0.0
    # SparsityMonitor's figures are over the whole tensors (gathered), not one rank's shard
    assert {n: gmp["monitor"][f"sparsity/{n}"] for n in MATRICES} == {n: round(0.8 * final[n].numel()) / final[n].numel()
                                                                      for n in MATRICES}


def test_gmp_with_global_scope_ranks_all_shards_together_as_one_process(runs):
    gmp = runs["gmp_global"]
    previous = None
    for step in (2, 4):
        weights = {n: gmp["before"][step][n] for n in MATRICES}
        expected = magnitude_masks(weights, cubic_sparsity(step, 0.8, 0.0, 0, 4), scope="global", current=previous)
        assert all(torch.equal(gmp["after"][step][n], expected[n]) for n in MATRICES), step
        previous = expected
    total = sum(previous[n].numel() for n in MATRICES)
    assert sum(int((~previous[n]).sum()) for n in MATRICES) == round(0.8 * total)  # exact over all tensors
    assert len({int((~previous[n]).sum()) / previous[n].numel() for n in MATRICES}) > 1  # not per tensor


def test_pruned_gradients_and_adam_moments_stay_zero_under_fsdp2(runs):
    for name in ("gmp", "slt", "random_mask"):
        assert runs[name]["pruned_grad_nonzero"] == [0] * 6, name
        assert runs[name]["moments_nonzero"] == 0, name


def test_slt_round_masks_and_ticket_equal_one_process_math(runs):
    source = runs["source"]
    theta_t = {n: source["state_dict"][n] for n in MATRICES}
    expected = magnitude_masks(theta_t, 0.8)
    ticket = runs["slt"]["ticket"]
    assert all(torch.equal(ticket["masks"][n], expected[n]) for n in MATRICES)
    theta_k = source["callbacks"]["WeightRewind{'step': 2}"]["snapshot"]
    for name, value in ticket["weights"].items():  # θk ⊙ m bit for bit; biases are θk
        want = theta_k[name] * expected[name] + 0.0 if name in expected else theta_k[name]
        assert torch.equal(value, want), name


def test_random_reinit_under_fsdp2_draws_what_one_process_draws(runs):
    """Each tensor from the model's own initialiser (nn.Linear.reset_parameters), on a plain copy of
    the sharded module: the ticket equals the one-process draw, masked by the random mask."""
    from lightning_slt.pruning import initialiser_values

    names = [n for n in runs["random_reinit"]["ticket"]["weights"]]
    values, _ = initialiser_values(MLP(shard=False), names, seed=1)
    masks = runs["random_reinit"]["ticket"]["masks"]
    for name in names:
        want = values[name] * masks[name] + 0.0 if name in masks else values[name]
        assert torch.equal(runs["random_reinit"]["ticket"]["weights"][name], want), name


def test_weight_rewind_restores_the_optimizer_state_it_recorded_sharded(runs):
    """restore_optimizer=True under FSDP2: the Adam moments recorded at step 2 (whole, by name) are the
    moments the next sharded run starts with."""
    recorded = runs["with_optimizer"]["callbacks"]["WeightRewind{'step': 2}"]["optimizer"][0]["state"]
    restored = runs["restored_exp_avg"]
    assert set(recorded) == set(restored) and len(restored) == 6  # every parameter, by name
    assert all(torch.equal(recorded[n]["exp_avg"], restored[n]) for n in restored)
    assert all(float(restored[n].abs().sum()) > 0 for n in restored)  # real moments, not a fresh optimizer


def test_clt_round_keeps_only_the_signs_as_one_process_does(runs):
    """SignOnlyReinit on the shards: every kept weight sign(θ2)·sqrt(6/(fan_in+fan_out)), the one-process values."""
    from lightning_slt.pruning import sign_only_values

    source = runs["source"]
    masks = magnitude_masks({n: source["state_dict"][n] for n in MATRICES}, 0.8)
    theta_k = source["callbacks"]["WeightRewind{'step': 2}"]["snapshot"]
    expected = sign_only_values({n: theta_k[n] * masks[n] + 0.0 for n in MATRICES}, masks)
    ticket = runs["clt"]["ticket"]
    assert all(torch.equal(ticket["weights"][n], expected[n]) for n in MATRICES)
    assert all(torch.equal(ticket["weights"][n], theta_k[n]) for n in ticket["weights"] if n not in MATRICES)  # biases


def test_random_mask_is_the_one_process_draw(runs):
    shapes = {n: torch.empty(runs["random_mask"]["final"]["masks"][n].shape) for n in MATRICES}
    expected = random_masks(shapes, 0.8, seed=3)
    assert all(torch.equal(runs["random_mask"]["final"]["masks"][n], expected[n]) for n in MATRICES)


def test_killed_mid_ramp_and_resumed_from_a_distributed_checkpoint_equals_uninterrupted(runs):
    """The DCP folder holds the sharded weights and optimizer; its metadata our whole masks, θ2 and the
    schedule's position. Resumed at step 8 of a ramp ending at 10, the run ends bit-identical."""
    checkpoint = runs["stopped_checkpoint"]
    assert checkpoint.is_dir() and (checkpoint / "meta.pt").is_file()
    meta = torch.load(checkpoint / "meta.pt", weights_only=True)
    assert meta["callbacks"]["GradualMagnitudePruning"]["last_pruned_step"] == 8
    snapshot = meta["callbacks"]["WeightRewind{'step': 2}"]["snapshot"]
    assert all(type(t) is torch.Tensor for t in snapshot.values())  # saved whole, not as one rank's shard
    assert snapshot["net.0.weight"].shape == (256, 64)
    uninterrupted, resumed = runs["uninterrupted"]["final"], runs["resumed"]["final"]
    for what in ("weights", "masks"):
        assert uninterrupted[what].keys() == resumed[what].keys()
        assert all(torch.equal(uninterrupted[what][n], resumed[what][n]) for n in uninterrupted[what]), what
    assert _counts(resumed["masks"]) == {n: round(0.8 * resumed["masks"][n].numel()) for n in MATRICES}


def test_resumed_from_a_full_consolidated_checkpoint_equals_uninterrupted_too(runs):
    """ModelParallelStrategy(save_distributed_checkpoint=False): one file, whole weights, a valid source."""
    checkpoint = runs["stopped_full_checkpoint"]
    assert checkpoint.is_file()
    source = load_source(checkpoint)
    assert sorted(source.snapshots) == [2] and source.step == 8
    assert source.weights["net.0.weight"].shape == (256, 64)  # whole, not one rank's shard
    uninterrupted, resumed = runs["uninterrupted"]["final"], runs["resumed_full"]["final"]
    for what in ("weights", "masks"):
        assert all(torch.equal(uninterrupted[what][n], resumed[what][n]) for n in uninterrupted[what]), what


@pytest.fixture(scope="module")
def translation_runs(tmp_path_factory, data_root) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("fsdp2_translation")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "tests.callbacks._fsdp2_translation_run", str(folder), str(data_root)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    names = ("gmp", "dense", "slt", "uninterrupted", "stopped", "resumed")
    return {name: torch.load(folder / f"{name}.pt", weights_only=True) for name in names}, folder


def test_translation_module_at_transformer_cpu_shapes_prunes_exactly_under_fsdp2(translation_runs):
    """Our model sharded per layer by its own configure_model: every prunable matrix (the tied
    embedding, attention projections, FFN) pruned to the exact count, masks those one process
    computes from the same whole weights, validation (beam search) run through the shards."""
    runs, _ = translation_runs
    run = runs["gmp"]
    assert run["sharded"]  # every parameter a DTensor shard when training started
    masks = run["final"]["masks"]
    assert len(masks) > 20 and "model.embed.weight" in masks
    assert {n: int((~m).sum()) for n, m in masks.items()} == {n: round(0.9 * m.numel()) for n, m in masks.items()}
    previous = None
    for step in (2, 4):
        weights = {n: run["before"][step][n] for n in masks}
        expected = magnitude_masks(weights, cubic_sparsity(step, 0.9, 0.0, 0, 4), current=previous)
        assert all(torch.equal(run["after"][step][n], expected[n]) for n in masks), step
        previous = expected
    assert run["pruned_grad_nonzero"] == [0] * 4 and run["moments_nonzero"] == 0
    assert 0.0 <= run["monitor"]["val/bleu"] <= 100.0


def test_translation_slt_round_from_a_sharded_checkpoint_folder_is_one_process_math(translation_runs):
    """The dense run's distributed checkpoint folder as the round's source: the mask is the smallest
    80 % of each matrix of its θT, the weights θ2 ⊙ m, bit for bit."""
    runs, folder = translation_runs
    source = load_source(folder / "dense.ckpt")
    assert sorted(source.snapshots) == [2] and source.step == 6  # θ2 recorded by the dense run, θT at step 6
    ticket = runs["slt"]["ticket"]
    expected = magnitude_masks({n: source.weights[n] for n in ticket["masks"]}, 0.8)
    assert all(torch.equal(ticket["masks"][n], expected[n]) for n in expected)
    theta_2 = source.snapshots[2]
    for name, value in ticket["weights"].items():
        want = theta_2[name] * expected[name] + 0.0 if name in expected else theta_2[name]
        assert torch.equal(value, want), name


def test_translation_killed_mid_ramp_and_resumed_equals_uninterrupted(translation_runs):
    runs, _ = translation_runs
    whole_run, resumed = runs["uninterrupted"]["final"], runs["resumed"]["final"]
    for what in ("weights", "masks"):
        assert all(torch.equal(whole_run[what][n], resumed[what][n]) for n in whole_run[what]), what
    assert {n: int((~m).sum()) for n, m in resumed["masks"].items()} == {
        n: round(0.8 * m.numel()) for n, m in resumed["masks"].items()}


def test_a_sharded_checkpoint_folder_exports_the_ticket_of_its_consolidated_file(translation_runs, tmp_path):
    """lightning-slt export reads the folder; the ticket equals, byte for byte, the one exported
    from the same checkpoint consolidated into one file."""
    runs, folder = translation_runs
    masks = runs["gmp"]["final"]["masks"]
    source = load_source(folder / "last.ckpt")
    assert all(torch.equal(source.masks[n], masks[n]) for n in masks)
    single = tmp_path / "consolidated" / "last.ckpt"  # the same name: a ticket records its source's
    single.parent.mkdir()
    torch.save(read_checkpoint(folder / "last.ckpt"), single)
    export_checkpoint(folder / "last.ckpt", tmp_path / "from_folder.ticket")
    export_checkpoint(single, tmp_path / "from_file.ticket")
    assert (tmp_path / "from_folder.ticket").read_bytes() == (tmp_path / "from_file.ticket").read_bytes()


def test_sharded_translation_module_computes_the_one_process_gradients(tmp_path, data_root):
    """Per-layer shard units (cross-attention its own, decoding methods registered) lose nothing:
    with the same batch on both ranks, every parameter's gradient equals one process's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "tests.callbacks._fsdp2_gradients", str(tmp_path), str(data_root)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    sharded = torch.load(tmp_path / "sharded_grads.pt", weights_only=True)
    one = torch.load(tmp_path / "one_process_grads.pt", weights_only=True)
    assert sharded.keys() == one.keys() and len(one) > 40
    assert all(float(one[n].abs().sum()) > 0 for n in one if n.endswith("weight"))
    worst = max(float((sharded[n] - one[n]).abs().max()) / max(float(one[n].abs().max()), 1e-12) for n in one)
    assert worst <= 1e-5, worst
