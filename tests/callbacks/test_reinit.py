"""SignOnlyReinit (±α per tensor, or random signs) and RandomReinit (the model's own initialiser),
with the random-mask control beside them: the ticket's start values, bit for bit."""

import math

import torch

from lightning_slt import ConvergedMask, RandomMask, RandomReinit, SignOnlyReinit, WeightRewind
from lightning_slt.pruning import initialiser_values

from ._tickets import _expected_masks, _run, _theta
from .tiny import fresh_module


def test_sign_only_reinit_values_are_plus_minus_fan_avg_bound_per_tensor(dense_ckpt):
    _, probe = _run([SignOnlyReinit(), ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    theta3, masks = _theta(dense_ckpt, 3), _expected_masks(dense_ckpt, 0.5)
    for name, mask in masks.items():
        fan_out, fan_in = theta3[name].shape
        alpha = math.sqrt(6 / (fan_in + fan_out))
        value = probe.start[name]
        assert torch.equal(value[mask].abs(), torch.full_like(value[mask], alpha)), name
        assert torch.equal(torch.sign(value[mask]), torch.where(theta3[name][mask] < 0, -1.0, 1.0))
        assert (value[~mask] == 0).all()


def test_controls_random_mask_random_reinit_and_random_sign(dense_ckpt):
    _, probe = _run([RandomMask(0.5, seed=7), WeightRewind(3, source=str(dense_ckpt))])
    _, again = _run([RandomMask(0.5, seed=7), WeightRewind(3, source=str(dense_ckpt))])
    masks = _expected_masks(dense_ckpt, 0.5)
    for name, mask in masks.items():
        random_mask = probe.start[name] != 0
        assert int((~random_mask).sum()) == round(0.5 * mask.numel())
        assert torch.equal(probe.start[name], again.start[name])
    assert any(not torch.equal(probe.start[n] != 0, masks[n]) for n in masks)

    _, reinit = _run([RandomReinit(seed=2), ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    params = {n: _theta(dense_ckpt, 3)[n] for n in masks}
    module = fresh_module(5)
    fresh, how = initialiser_values(module, [n for n, _ in module.named_parameters()], seed=2)
    assert how == "Embedding.reset_parameters, LayerNorm.reset_parameters, Linear.reset_parameters"
    for name, mask in masks.items():
        assert torch.equal(reinit.start[name], fresh[name] * mask + 0.0)
    for name in ("net.0.bias", "net.1.weight", "net.1.bias"):  # every tensor is re-drawn, not only matrices
        assert torch.equal(reinit.start[name], fresh[name])
    assert not torch.equal(reinit.start["net.0.bias"], _theta(dense_ckpt, 3)["net.0.bias"])

    _, signs = _run([ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), SignOnlyReinit(sign="random", seed=1)])
    agree = sum(int((torch.sign(signs.start[n]) == torch.sign(params[n]))[masks[n]].sum()) for n in masks)
    kept = sum(int(m.sum()) for m in masks.values())
    assert 0.3 < agree / kept < 0.7
