"""ConvergedMask: the magnitude mask of a converged run's θT, bit for bit on the rewound weights,
nested across rounds, and read from the files of other tools (state_dict zeros, torch prune,
Lightning ModelPruning, OpenLTH)."""

import pytest
import torch
from torch.nn.utils import prune

from lightning_slt import ConvergedMask, WeightRewind
from lightning_slt.artifacts import load_source
from lightning_slt.pruning import prunable_parameters

from ._tickets import _expected_masks, _run, _theta
from .tiny import fresh_module, make_trainer


def test_slt_start_equals_theta_k_times_mask_bit_for_bit(dense_ckpt):
    _, probe = _run([ConvergedMask(str(dense_ckpt), sparsity=0.5), WeightRewind(step=3, source=str(dense_ckpt))])
    theta3, masks = _theta(dense_ckpt, 3), _expected_masks(dense_ckpt, 0.5)
    for name, value in probe.start.items():
        expected = theta3[name] * masks[name] + 0.0 if name in masks else theta3[name]
        assert torch.equal(value, expected), name
        assert not torch.signbit(value[value == 0]).any()  # +0.0, not -0.0
    for name, mask in masks.items():
        assert int((~mask).sum()) == round(0.5 * mask.numel())


def test_nested_rounds_and_targets_must_increase(dense_ckpt, tmp_path):
    module, _ = _run([ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), WeightRewind(2)], steps=6)
    round1 = tmp_path / "r1.ckpt"
    trainer = make_trainer(6, [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), WeightRewind(2)])
    trainer.fit(fresh_module(1))
    trainer.save_checkpoint(round1)
    first = load_source(round1).masks
    module, _ = _run([ConvergedMask(str(round1), 0.7), WeightRewind(2, source=str(round1))])
    for name, mask in first.items():
        now = prunable_parameters(module)[name] != 0
        assert not (now & ~mask).any() and int((~now).sum()) == round(0.7 * mask.numel())
    with pytest.raises(ValueError, match="targets must increase"):
        make_trainer(1, [ConvergedMask(str(round1), 0.3)]).fit(fresh_module(1))


@pytest.mark.parametrize("kind", ["state_dict", "torch_prune", "model_pruning", "openlth"])
def test_reads_masks_of_other_tools(kind, dense_ckpt, tmp_path):
    """Plain state_dict with zeros, torch.nn.utils.prune, Lightning ModelPruning, OpenLTH mask.pth."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelPruning

    theirs = fresh_module(3)
    path = tmp_path / "source.pt"
    if kind == "model_pruning":
        trainer = make_trainer(-1, [ModelPruning("l1_unstructured", amount=0.5, use_global_unstructured=False,
                                                make_pruning_permanent=False, parameter_names=["weight"],
                                                parameters_to_prune=[(theirs.net[0], "weight"), (theirs.net[3], "weight")],
                                                prune_on_train_epoch_end=True)], max_epochs=1)
        trainer.fit(theirs)
        trainer.save_checkpoint(path)
        expected = {n: load_source(path).masks[n] for n in ("net.0.weight", "net.3.weight")}
    else:
        for layer in (theirs.net[0], theirs.net[3]):
            prune.l1_unstructured(layer, "weight", amount=0.5)
        expected = {"net.0.weight": theirs.net[0].weight_mask.bool(), "net.3.weight": theirs.net[3].weight_mask.bool()}
        if kind == "torch_prune":
            torch.save(theirs.state_dict(), path)
        elif kind == "openlth":
            path = tmp_path / "mask.pth"
            torch.save({n: m.int() for n, m in expected.items()}, path)
        else:
            for layer in (theirs.net[0], theirs.net[3]):
                prune.remove(layer, "weight")
            torch.save(theirs.state_dict(), path)
    assert isinstance(pl.__version__, str)
    module, probe = _run([ConvergedMask(str(path), sparsity=None, include=["net.*.weight"], exclude=["net.1.*"])])
    for name, mask in expected.items():
        assert torch.equal(probe.start[name] != 0, mask), name
