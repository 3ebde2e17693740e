"""Exact counts, nesting (also at the shipped model shapes), ties and validation of the mask functions."""

import pytest
import torch

from lightning_slt.model.presets import transformer_base, transformer_cpu
from lightning_slt.model.transformer import Transformer
from lightning_slt.pruning import (
    Masks,
    ParameterMasks,
    check_masks,
    check_nested_target,
    magnitude_masks,
    prunable_parameters,
    random_masks,
    sparsity_report,
)


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(7, 13, generator=g), "b.weight": torch.randn(5, 3, generator=g)}


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.9, 0.98, 0.999])
def test_layerwise_prunes_exactly_round_s_n_per_tensor(sparsity):
    g = torch.Generator().manual_seed(1)
    weights = {**_weights(), "c.weight": torch.randn(40, 50, generator=g)}
    emptied = {n for n, w in weights.items() if round(sparsity * w.numel()) >= w.numel()}
    if emptied:  # a tensor with no kept weight is refused (issue 13), so check the others
        with pytest.raises(ValueError, match="leaving it no kept weight"):
            magnitude_masks(weights, sparsity, "layerwise")
        weights = {n: w for n, w in weights.items() if n not in emptied}
    masks = magnitude_masks(weights, sparsity, "layerwise")
    for name, w in weights.items():
        assert int((~masks[name]).sum()) == round(sparsity * w.numel())
        assert masks[name].dtype == torch.bool and masks[name].shape == w.shape


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_global_prunes_exactly_round_s_n_overall_by_one_threshold(sparsity):
    weights = _weights()
    masks = magnitude_masks(weights, sparsity, "global")
    total = sum(w.numel() for w in weights.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(sparsity * total)
    kept_min = torch.cat([weights[n].abs()[masks[n]] for n in weights]).min()
    pruned_max = torch.cat([weights[n].abs()[~masks[n]] for n in weights]).max()
    assert pruned_max <= kept_min


def test_magnitude_keeps_the_largest():
    w = {"w": torch.tensor([[0.5, -3.0, 0.1], [2.0, -0.2, 1.0]])}
    masks = magnitude_masks(w, 0.5)
    assert masks["w"].tolist() == [[False, True, False], [True, False, True]]


def test_ties_broken_by_lower_index_first_and_deterministic():
    w = {"w": torch.ones(4, 5)}
    masks = magnitude_masks(w, 0.3)  # round(0.3 * 20) = 6 pruned among equal values
    assert (~masks["w"]).flatten().nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_masks_are_nested_across_rounds_even_if_weights_regrow():
    weights = _weights()
    first = magnitude_masks(weights, 0.5)
    regrown = {n: w + 10.0 * (~first[n]) for n, w in weights.items()}  # pruned entries now the largest
    second = magnitude_masks(regrown, 0.7, current=first)
    for name, w in weights.items():
        assert not (second[name] & ~first[name]).any(), "an entry pruned once came back"
        assert int((~second[name]).sum()) == round(0.7 * w.numel())


def test_target_below_current_keeps_current_pruning():
    weights = _weights()
    first = magnitude_masks(weights, 0.6)
    again = magnitude_masks(weights, 0.2, current=first)
    assert all(torch.equal(again[n], first[n]) for n in weights)


def test_random_masks_exact_counts_seeded_and_independent_of_other_tensors():
    weights = _weights()
    a = random_masks(weights, 0.8, seed=3)
    b = random_masks({"a.weight": weights["a.weight"]}, 0.8, seed=3)
    c = random_masks(weights, 0.8, seed=4)
    assert torch.equal(a["a.weight"], b["a.weight"])
    assert not torch.equal(a["a.weight"], c["a.weight"])
    for name, w in weights.items():
        assert int((~a[name]).sum()) == round(0.8 * w.numel())


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5", None, True])
def test_sparsity_outside_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_masks(_weights(), bad)


def test_bad_scope_names_the_value():
    with pytest.raises(ValueError, match="scope must be 'layerwise' or 'global', got 'globl'"):
        magnitude_masks(_weights(), 0.5, scope="globl")


def test_nan_weights_are_refused_with_the_tensor_name():
    w = _weights()
    w["b.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="b.weight"):
        magnitude_masks(w, 0.5)


def test_check_masks_names_tensor_and_both_shapes():
    weights = _weights()
    with pytest.raises(ValueError, match=r"'a.weight' has shape \(13, 7\), the model's has \(7, 13\)"):
        check_masks({"a.weight": torch.ones(13, 7, dtype=torch.bool)}, weights, allow_subset=True)
    with pytest.raises(ValueError, match="does not have"):
        check_masks({"zzz": torch.ones(1, dtype=torch.bool)}, weights, allow_subset=True)
    with pytest.raises(ValueError, match="must be bool"):
        check_masks({"a.weight": torch.ones(7, 13)}, weights, allow_subset=True)


def test_masks_are_checked_once_when_built():
    params = {"a": torch.nn.Parameter(torch.randn(3, 4))}
    with pytest.raises(ValueError, match=r"mask tensor 'a' has shape \(4, 3\), the model's has \(3, 4\)"):
        Masks({"a": torch.ones(4, 3, dtype=torch.bool)}, params)
    with pytest.raises(ValueError, match="must be bool"):
        Masks({"a": torch.ones(3, 4)}, params)
    masks = Masks({"a": torch.rand(3, 4) > 0.5}, params)
    assert isinstance(masks, dict) and masks.keys() == {"a"}
    holder = ParameterMasks(params)
    holder.set_masks_(masks)
    assert torch.equal(holder.masks["a"], masks["a"]) and int((params["a"][~masks["a"]] != 0).sum()) == 0


# ----------------------------------------------------------------------------- nesting at the shipped shapes
# No training needed. The bug this pins: per-tensor rounding of round(s * n) made a 60 % round
# 0.6000013 pruned overall on transformer_cpu, and the next run's target of 0.6 was refused by a
# global check with a 1e-9 tolerance, so SLT-MP could not start its MP run. The tiny test model
# rounds the other way.


# transformer_base: 4 to 8 s per test on 2 cores, so in the slow lane
@pytest.fixture(scope="module", params=["transformer_cpu", pytest.param("transformer_base", marks=pytest.mark.slow)])
def weights(request):
    torch.manual_seed(0)
    config = (transformer_cpu if request.param == "transformer_cpu" else transformer_base)()
    with torch.no_grad():
        model = Transformer(config)
    return {n: p.detach() for n, p in prunable_parameters(model).items()}


@pytest.mark.parametrize("target", [0.5, 0.6, 0.8, 0.9])
def test_equal_target_keeps_the_parents_mask(weights, target):
    parent = magnitude_masks(weights, target)
    check_nested_target(parent, target)  # no error at any shape
    child = magnitude_masks(weights, target, current=parent)
    assert all(torch.equal(child[n], parent[n]) for n in parent)
    for name, mask in parent.items():
        assert int((~mask).sum()) == round(target * mask.numel())


def test_rounding_goes_above_the_target_at_real_shapes(weights):
    """Why the old global check failed: some target's per-tensor rounding lands above it overall."""
    over = [t for t in (0.5, 0.6, 0.8, 0.9) if sparsity_report(magnitude_masks(weights, t))["global"] > t + 1e-9]
    assert over, "no rounding above the target at these shapes; the regression would not be exercised"


def test_lower_target_is_refused_per_tensor(weights):
    parent = magnitude_masks(weights, 0.6)
    with pytest.raises(ValueError, match=r"below the 0\.6000 of the source in '.*' \(already pruned there\); masks are nested"):
        check_nested_target(parent, 0.59)
