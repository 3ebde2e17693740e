"""What every pruning callback shares: ticket assembly in fixed phases whatever the callbacks'
order, one source per ingredient, bad sources refused before training, the ticket record in every
checkpoint, and masks and state restored bit for bit when a SIGKILLed run resumes."""

import itertools
import re
import subprocess
import sys

import pytest
import torch

from lightning_slt import ConvergedMask, RandomMask, SignOnlyReinit, WeightRewind
from lightning_slt.callbacks.base import session_of

from ._tickets import _expected_masks, _run
from .tiny import REPO_ROOT, fresh_module, make_trainer, params_of


def test_same_ticket_whatever_the_callback_order(dense_ckpt):
    tickets = []
    for order in itertools.permutations(range(3)):
        parts = [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), SignOnlyReinit()]
        _, probe = _run([parts[i] for i in order])
        tickets.append(probe.start)
    for other in tickets[1:]:
        assert all(torch.equal(tickets[0][n], other[n]) for n in tickets[0])


def test_bad_sources_fail_before_training(dense_ckpt, tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(dense_ckpt.read_bytes()[:300])
    other = tmp_path / "other.pt"
    torch.save({"net.0.weight": torch.ones(3, 3), "net.3.weight": torch.ones(20, 16)}, other)
    cases = [
        (ConvergedMask(str(tmp_path / "missing.ckpt"), 0.5), FileNotFoundError, "does not exist"),
        (ConvergedMask(str(corrupt), 0.5), ValueError, "truncated or corrupt"),
        (ConvergedMask(str(other), 0.5, include=["net.0.weight", "net.3.weight"]), ValueError, r"shape \(3, 3\).*other shapes"),
        (WeightRewind(7, source=str(dense_ckpt)), ValueError, r"has no θ_7: it recorded steps \[0, 3\]"),
        (WeightRewind(50), ValueError, "beyond the run"),
    ]
    for callback, error, message in cases:
        module = fresh_module()
        before = {n: p.clone() for n, p in module.named_parameters()}
        trainer = make_trainer(10, [callback])
        with pytest.raises(error, match=message):
            trainer.fit(module)
        assert trainer.global_step == 0
        assert all(torch.equal(before[n], p) for n, p in module.named_parameters())


@pytest.mark.parametrize("callbacks, what", [
    (lambda c: [ConvergedMask(c, 0.5), ConvergedMask(c, 0.6)], "2 callbacks set the ticket's mask: ConvergedMask"),
    (lambda c: [RandomMask(0.5, seed=1), RandomMask(0.5, seed=2)], "2 callbacks set the ticket's mask: RandomMask"),
    (lambda c: [ConvergedMask(c, 0.5), RandomMask(0.5)], "RandomMask(sparsity=0.5, scope='layerwise', seed=0)"),
    (lambda c: [WeightRewind(3, source=c), WeightRewind(0, source=c)], "2 callbacks set the ticket's weights"),
])
def test_two_sources_of_one_ingredient_are_refused_before_training(dense_ckpt, callbacks, what):
    """The README says the callbacks' order does not matter; with two mask (or weight) sources
    the list order would silently pick the winner."""
    module = fresh_module(1)
    before = params_of(module)
    with pytest.raises(ValueError, match=re.escape(what)) as err:
        make_trainer(2, callbacks(str(dense_ckpt))).fit(module)
    assert "the list order must not choose" in str(err.value)
    assert all(torch.equal(before[n], p) for n, p in params_of(module).items())  # nothing trained


def test_every_checkpoint_says_how_its_ticket_was_assembled(dense_ckpt, tmp_path):
    trainer = make_trainer(2, [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    trainer.fit(fresh_module(1))
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    ticket = torch.load(tmp_path / "x.ckpt", weights_only=True)["lightning_slt"]["ticket"]
    masks = _expected_masks(dense_ckpt, 0.5)
    assert ticket == {"assembled_by": ["WeightRewind", "ConvergedMask"], "kept": sum(int(m.sum()) for m in masks.values()),
                      "kept_zero": 0}


# ----------------------------------------------------------------------------- resume
# A run SIGKILLed mid-schedule and resumed ends bit-identical to an uninterrupted run.


def _run_tiny(out, *args):
    return subprocess.run([sys.executable, "-m", "tests.callbacks._tiny_run", str(out), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sigkill_mid_schedule_then_resume_matches_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _run_tiny(whole).returncode == 0
    crashed = _run_tiny(killed, "--kill-at", "9")  # between pruning steps 8 and 12, after θ3 was recorded
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert not (killed / "final.pt").exists()
    resumed = _run_tiny(killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = torch.load(whole / "final.pt"), torch.load(killed / "final.pt")
    for part in ("weights", "masks", "theta3"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][n], b[part][n]) for n in a[part]), part
    assert sum(int((~m).sum()) for m in a["masks"].values()) > 0
    assert session_of is not None
