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


class _Steps(Probe):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, *args):
        self.steps += 1


@pytest.mark.parametrize("added", ["in_the_trainer", "appended_later"])
def test_two_rewinds_of_one_step_are_refused_naming_both_before_training(added):
    first, second = WeightRewind(step=2, source=None), WeightRewind(step=2, restore_optimizer=True)
    steps = _Steps()
    if added == "in_the_trainer":  # Lightning said only "the callback.state_key must be unique" here
        trainer = make_trainer(4, [first, second, steps])
    else:  # Lightning checks no list changed after Trainer(): one state overwrote the other in every checkpoint
        trainer = make_trainer(4, [first, steps])
        trainer.callbacks.append(second)
    with pytest.raises(ValueError) as info:
        trainer.fit(fresh_module(0))
    message = str(info.value)
    assert message.startswith("2 WeightRewind callbacks record step 2: WeightRewind(step=2, restore_optimizer=False), "
                              "WeightRewind(step=2, restore_optimizer=True);"), message
    assert "keep one WeightRewind per step" in message
    assert steps.steps == 0


def test_rewinds_of_different_steps_save_and_resume_under_their_own_keys(tmp_path):
    path = tmp_path / "run.ckpt"
    trainer = make_trainer(5, [WeightRewind(step=2), WeightRewind(step=4)])
    trainer.fit(fresh_module(0))
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["callbacks"]
    assert {"WeightRewind{'step': 2}", "WeightRewind{'step': 4}"} <= set(saved)
    assert torch.equal(saved["WeightRewind{'step': 2}"]["snapshot"]["net.0.weight"],
                       load_source(path).snapshots[2]["net.0.weight"])
    resumed = [WeightRewind(step=2), WeightRewind(step=4)]
    make_trainer(6, resumed).fit(fresh_module(1), ckpt_path=str(path))
    for rewind in resumed:  # restored, not recorded again (the resumed run starts after both steps)
        assert torch.equal(rewind.snapshot["net.0.weight"], saved[rewind.state_key]["snapshot"]["net.0.weight"])
