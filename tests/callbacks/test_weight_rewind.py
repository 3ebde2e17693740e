"""WeightRewind: records θk under a state key per step, rewinds to it (θ0 for LT, θk for SLT), reads
a plain state_dict as θk, and restores Adam's moments and the LR schedule when asked."""

import pytest
import torch

from lightning_slt import ConvergedMask, WeightRewind
from lightning_slt.artifacts import load_source

from ._tickets import _expected_masks, _run, _theta
from .tiny import Probe, fresh_module, make_trainer


def test_state_key_tells_rewind_steps_apart():
    assert WeightRewind(step=3).state_key == "WeightRewind{'step': 3}"


def test_lt_rewinds_to_theta_0(dense_ckpt):
    _, probe = _run([WeightRewind(step=0, source=str(dense_ckpt)), ConvergedMask(str(dense_ckpt), sparsity=0.3)])
    theta0, masks = _theta(dense_ckpt, 0), _expected_masks(dense_ckpt, 0.3)
    assert all(torch.equal(probe.start[n], theta0[n] * masks[n] + 0.0) for n in masks)
    assert torch.equal(probe.start["net.1.weight"], theta0["net.1.weight"])  # LayerNorm rewound, not pruned


def test_plain_state_dict_serves_as_rewind_source(tmp_path):
    theirs = fresh_module(4)
    path = tmp_path / "theta_k.pt"
    torch.save(theirs.state_dict(), path)
    _, probe = _run([WeightRewind(5, source=str(path))])
    assert all(torch.equal(probe.start[n], p) for n, p in theirs.state_dict().items())


def test_restore_optimizer_restores_adam_moments_and_lr_schedule(tmp_path):
    path = tmp_path / "src.ckpt"
    trainer = make_trainer(8, [WeightRewind(4, restore_optimizer=True)])
    trainer.fit(fresh_module(0))
    trainer.save_checkpoint(path)
    recorded = load_source(path).optimizer_states[4]
    rewind = WeightRewind(4, source=str(path), restore_optimizer=True)
    module = fresh_module(1)
    trainer = make_trainer(1, [rewind])

    class Check(Probe):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            opt = trainer.optimizers[0]
            self.exp_avg = [opt.state[p]["exp_avg"].clone() for p in pl_module.parameters()]
            self.lr = opt.param_groups[0]["lr"]

    check = Check()
    trainer.callbacks.append(check)
    trainer.fit(module)
    saved = recorded["optimizer"][0]["state"]
    assert all(torch.equal(a, saved[i]["exp_avg"]) for i, a in enumerate(check.exp_avg))
    assert check.lr == pytest.approx(0.01 / (1 + 4))
