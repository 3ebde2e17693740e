"""Parameter selection on real torch modules, re-initialisation values and statistics."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from lightning_slt.pruning import (
    ParameterMasks,
    fan_avg_bound,
    magnitude_masks,
    mask_jaccard,
    prunable_parameters,
    random_init_values,
    sign_agreement,
    sign_only_values,
    sparsity_report,
)


def test_nn_transformer_selection_includes_fused_in_proj_and_excludes_biases_and_norms():
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    names = set(prunable_parameters(model))
    assert "encoder.layers.0.self_attn.in_proj_weight" in names
    assert "decoder.layers.0.multihead_attn.in_proj_weight" in names
    assert "encoder.layers.0.self_attn.out_proj.weight" in names
    assert not any(n.endswith("bias") or ".norm" in n for n in names)


def test_tied_embedding_appears_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"embed": emb, "head": head})
    assert list(prunable_parameters(model)) == ["embed.weight"]


def test_include_exclude_patterns_and_typos():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    assert list(prunable_parameters(model, exclude=["2.*"])) == ["0.weight"]
    assert list(prunable_parameters(model, include=["*.bias"])) == ["0.bias", "1.bias", "2.bias"]
    with pytest.raises(ValueError, match="matches no parameter"):
        prunable_parameters(model, include=["encoder.*"])


def test_sign_only_values_are_plus_minus_fan_avg_bound():
    g = torch.Generator().manual_seed(0)
    w = {"w": torch.randn(30, 20, generator=g)}
    masks = magnitude_masks(w, 0.5)
    m = masks["w"]
    v = sign_only_values(w, masks)["w"]
    alpha = math.sqrt(6 / (30 + 20))
    assert fan_avg_bound((30, 20)) == alpha
    assert torch.equal(v[m], torch.sign(w["w"][m]) * alpha)
    assert (v[~m] == 0).all()
    std = sign_only_values(w, masks, magnitude="std")["w"]
    assert torch.allclose(std[m].abs(), torch.full_like(std[m], float(w["w"].std())))


def test_random_signs_are_seeded_and_roughly_balanced():
    w = {"w": torch.ones(100, 100)}
    a = sign_only_values(w, sign="random", seed=1)["w"]
    b = sign_only_values(w, sign="random", seed=1)["w"]
    assert torch.equal(a, b)
    assert 0.45 < float((a > 0).float().mean()) < 0.55


def test_random_init_within_bounds_and_seeded():
    w = {"w": torch.zeros(64, 32)}
    a = random_init_values(w, seed=5)["w"]
    assert float(a.abs().max()) <= fan_avg_bound((64, 32))
    assert torch.equal(a, random_init_values(w, seed=5)["w"])


def test_stats_report_jaccard_and_sign_agreement():
    masks = {"a": torch.tensor([True, False, True, True]), "b": torch.tensor([[False, False], [True, True]])}
    r = sparsity_report(masks, total_parameters=10)
    assert r["per_tensor"] == {"a": 0.25, "b": 0.5}
    assert r["global"] == 3 / 8 and r["pruned"] == 3 and r["remaining"] == 7
    other = {"a": torch.tensor([True, True, False, True]), "b": masks["b"]}
    assert mask_jaccard(masks, other) == pytest.approx(4 / 6)
    w = {"a": torch.tensor([1.0, 0.0, -2.0, 3.0])}
    ref = {"a": torch.tensor([1.0, 5.0, 2.0, 3.0])}
    assert sign_agreement(w, ref, {"a": masks["a"]}) == pytest.approx(2 / 3)


def test_parameter_masks_keep_pruned_weights_at_exact_zero_under_adam():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    params = prunable_parameters(model)
    store = ParameterMasks(params)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):  # build momentum first, then prune
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
    store.set_masks_(magnitude_masks(params, 0.75), [opt])
    store.attach(opt)
    for _ in range(20):
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
        for name, p in params.items():
            pruned = p[~store.masks[name]]
            assert (pruned == 0).all() and not torch.signbit(pruned).any()
    store.detach()


def test_pruning_core_does_not_import_lightning():
    code = "import sys, lightning_slt.pruning; sys.exit(any(m.startswith(('pytorch_lightning','lightning')) for m in sys.modules if m != 'lightning_slt' and not m.startswith('lightning_slt')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
