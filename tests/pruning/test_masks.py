"""Exact counts, nesting, ties and validation of the mask functions."""

import pytest
import torch

from lightning_slt.pruning import check_masks, magnitude_masks, random_masks


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
