"""Resume honours the pruning configuration (issue 13, class 2).

A resumed fit does not assemble its ticket again, so a 50 %-pruned run resumed without its
callbacks silently became dense, and a mask callback added on resume was silently dropped. Both
are refused now, before any step, with what differs and the fix; the checkpoint is untouched.
Budget: < 20 s (one tiny pruned run, shared, then refused resumes).
"""

from __future__ import annotations

import re

import pytest
import torch

from lightning_slt import ConvergedMask, GradualMagnitudePruning, RandomMask, SignOnlyReinit, WeightRewind
from lightning_slt._lightning import Callback

from .tiny import StepCounter, file_states, make_module, make_trainer


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory, data_root, spm_cache):
    """A dense run, then a 50 % SLT round stopped at step 4 of 8 (its last.ckpt holds the masks)."""
    from .tiny import make_data

    root = tmp_path_factory.mktemp("resume_cfg")
    data = make_data(data_root, spm_cache)
    dense = root / "dense.ckpt"
    trainer = make_trainer(root / "d", max_steps=6, callbacks=[WeightRewind(step=0), WeightRewind(step=2)])
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(dense)
    callbacks = lambda: [ConvergedMask(str(dense), 0.5), WeightRewind(step=2, source=str(dense))]  # noqa: E731
    round_ckpt = root / "round.ckpt"
    trainer = make_trainer(root / "r", max_steps=4, callbacks=callbacks())
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(round_ckpt)
    return data, dense, round_ckpt, callbacks


def _resume(data, ckpt, callbacks, root):
    counter = StepCounter()
    trainer = make_trainer(root, max_steps=8, callbacks=[*callbacks, counter])
    before = file_states(ckpt)
    with pytest.raises(ValueError) as err:
        trainer.fit(make_module(data, seed=5), datamodule=data, ckpt_path=str(ckpt))
    assert counter.steps == 0, "refused after training started"
    assert file_states(ckpt) == before
    return str(err.value)


def test_pruned_checkpoint_resumed_without_pruning_callbacks_is_refused(pruned_run, tmp_path, tally):
    data, _, ckpt, _ = pruned_run
    for extra in ([], [StepCounter()]):  # no callback at all, or only unrelated ones
        message = _resume(data, ckpt, extra, tmp_path)
        assert re.search(r"holds the masks of a pruned run \(5\d\.\d% of \d+ weights in \d+ tensors pruned\)", message)
        assert "this fit has no pruning callback, so it would continue dense" in message
        assert "Resume with the pruning callbacks the run was started with: ConvergedMask(" in message
        assert "WeightRewind(step=2" in message
        tally("bad_inputs")


@pytest.mark.parametrize("change, added, removed", [
    (lambda cbs: [*cbs, GradualMagnitudePruning(0.8, end_step=6, frequency=2)], "GradualMagnitudePruning(final_sparsity=0.8", "none"),
    (lambda cbs: [ConvergedMask(cbs[0].source, 0.7), cbs[1]], "ConvergedMask(source=", "ConvergedMask(source="),
    (lambda cbs: [cbs[1]], "none", "ConvergedMask(source="),
    (lambda cbs: [*cbs, SignOnlyReinit()], "SignOnlyReinit(magnitude='fan_avg'", "none"),
    (lambda cbs: [RandomMask(0.5), cbs[1]], "RandomMask(sparsity=0.5", "ConvergedMask("),
])
def test_pruning_callbacks_changed_on_resume_are_refused_with_the_difference(pruned_run, tmp_path, tally, change, added, removed):
    data, _, ckpt, callbacks = pruned_run
    message = _resume(data, ckpt, change(callbacks()), tmp_path)
    assert "with other pruning callbacks than it was started with" in message
    assert f"added or changed: {'none' if added == 'none' else ''}" in message and added in message.split("removed")[0]
    assert removed in message.split("removed or changed:")[1]
    assert "Resume with the callbacks it was started with" in message and "start a new run from this checkpoint" in message
    tally("bad_inputs")


def test_same_callbacks_in_another_order_resume_and_keep_the_masks(pruned_run, tmp_path):
    data, _, ckpt, callbacks = pruned_run
    saved = torch.load(ckpt, weights_only=True)["lightning_slt"]["masks"]
    module = make_module(data, seed=5)
    trainer = make_trainer(tmp_path, max_steps=8, callbacks=list(reversed(callbacks())))
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt))
    assert trainer.global_step == 8
    for name, mask in saved.items():
        assert int((module.get_parameter(name)[~mask] != 0).sum()) == 0, name


@pytest.fixture(scope="module")
def plain_dense(tmp_path_factory, data_root, spm_cache):
    """A dense run with no pruning callback at all (a user's baseline), stopped at step 4."""
    from .tiny import make_data

    root = tmp_path_factory.mktemp("plain_dense")
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(root / "d", max_steps=4)
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(root / "dense.ckpt")
    return data, root / "dense.ckpt"


@pytest.mark.parametrize("added", ["ConvergedMask", "GradualMagnitudePruning", "RandomMask"])
def test_a_dense_checkpoint_resumed_with_a_pruning_callback_added_is_refused(plain_dense, added, tmp_path, tally):
    """Before: trained on dense with exit 0 (a resumed fit assembles no ticket), though the README
    said an added callback is refused; it was only refused when the checkpoint had a pruning record."""
    data, dense = plain_dense
    callback = {"ConvergedMask": lambda: ConvergedMask(str(dense), 0.5),
                "GradualMagnitudePruning": lambda: GradualMagnitudePruning(0.5, end_step=6, frequency=1),
                "RandomMask": lambda: RandomMask(0.5)}[added]()
    message = _resume(data, dense, [callback], tmp_path)
    assert f"checkpoint {dense} was trained without pruning callbacks (it holds no lightning_slt record)" in message
    assert f"so resuming it with {added}(" in message and "would go on dense" in message
    assert "start a new run from it: drop ckpt_path and pass it as the callbacks' source" in message
    tally("bad_inputs")


def test_a_dense_checkpoint_resumed_with_theta_k_recorders_only_resumes(plain_dense, tmp_path):
    data, dense = plain_dense
    counter = StepCounter()
    trainer = make_trainer(tmp_path, max_steps=6, callbacks=[WeightRewind(step=5), counter])
    trainer.fit(make_module(data), datamodule=data, ckpt_path=str(dense))
    assert counter.steps == 2 and trainer.callbacks[0].snapshot is not None  # θ5 recorded after resuming at 4


def test_a_schedule_checkpointed_before_its_first_prune_resumes(tmp_path, data_root, spm_cache):
    from .tiny import make_data

    data = make_data(data_root, spm_cache)
    schedule = lambda: GradualMagnitudePruning(0.5, begin_step=3, end_step=6, frequency=1)  # noqa: E731
    trainer = make_trainer(tmp_path / "a", max_steps=6, callbacks=[schedule(), _StopAt(2)])
    trainer.fit(make_module(data), datamodule=data)
    assert trainer.global_step == 2
    trainer.save_checkpoint(tmp_path / "early.ckpt")
    module = make_module(data)
    make_trainer(tmp_path / "b", max_steps=6, callbacks=[schedule()]).fit(module, datamodule=data,
                                                                           ckpt_path=str(tmp_path / "early.ckpt"))
    masks = [m for m in module.state_dict().values() if m.dim() >= 2]
    assert any(float((m == 0).float().mean()) >= 0.49 for m in masks)  # pruned after resuming


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        trainer.should_stop = trainer.global_step >= self.step
