"""The re-init control draws each tensor from the model's own initialiser, found on any model;
sign-only (CLT) values are ±α per tensor; random-init values stay within Glorot's bound.

Budget: < 10 s (transformer_cpu shapes are built, not trained)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_slt import TranslationModule
from lightning_slt.pruning import (
    fan_avg_bound,
    initialiser_values,
    magnitude_masks,
    random_init_values,
    sign_only_values,
)


def _std_close(values: torch.Tensor, expected: float) -> bool:
    """Within 6 standard errors of a sample std (plus 1 %), so a 4x-off initialiser fails."""
    return abs(float(values.float().std()) - expected) < 6 * expected / math.sqrt(2 * values.numel()) + 0.01 * expected


def test_transformer_cpu_every_tensor_from_its_own_distribution():
    module = TranslationModule.from_preset("transformer_cpu", vocab_size=8000)
    names = [n for n, _ in module.named_parameters()]
    values, how = initialiser_values(module, names, seed=3)
    assert how == "Transformer.reset_parameters"
    assert set(values) == set(names)
    for name, value in values.items():
        current = module.get_parameter(name)
        assert value.shape == current.shape and value.dtype == current.dtype
        if name.endswith("embed.weight"):
            assert _std_close(value, 256 ** -0.5), name  # N(0, d^-1/2); Glorot would be 0.0156
            assert not _std_close(value, math.sqrt(6 / (8000 + 256)) / math.sqrt(3))
        elif value.dim() == 2:
            rows, cols = value.shape
            assert _std_close(value, math.sqrt(6 / (rows + cols)) / math.sqrt(3)), name
            assert not torch.equal(value, current.detach())  # a fresh draw, not the current weights
        elif "norm" in name and name.endswith("weight"):
            assert torch.equal(value, torch.ones_like(value)), name
        else:
            assert torch.equal(value, torch.zeros_like(value)), name


def test_same_seed_same_draw_other_seed_other_draw_and_global_rng_untouched():
    module = TranslationModule.from_preset("transformer_cpu", vocab_size=500)
    names = ["model.embed.weight", "model.decoder.layers.0.ffn.fc1.weight"]
    state = torch.random.get_rng_state()
    a, _ = initialiser_values(module, names, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    b, _ = initialiser_values(module, names, seed=1)
    c, _ = initialiser_values(module, names, seed=2)
    assert all(torch.equal(a[n], b[n]) for n in names)
    assert not any(torch.equal(a[n], c[n]) for n in names)


def test_nn_transformer_uses_its_reset_and_plain_layers_their_own():
    model = nn.Transformer(d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64)
    names = [n for n, p in model.named_parameters() if p.dim() >= 2]
    values, how = initialiser_values(model, names, seed=0)
    assert how == "Transformer._reset_parameters"
    for name in names:  # xavier_uniform on every matrix
        rows, cols = values[name].shape
        assert float(values[name].abs().max()) <= math.sqrt(6 / (rows + cols)) + 1e-6, name

    layers = nn.Sequential(nn.Embedding(300, 16), nn.Linear(16, 16))
    values, how = initialiser_values(layers, ["0.weight", "1.weight", "1.bias"], seed=0)
    assert how == "Embedding.reset_parameters, Linear.reset_parameters"
    assert _std_close(values["0.weight"], 1.0)  # nn.Embedding: N(0, 1)
    assert float(values["1.weight"].abs().max()) <= 1 / math.sqrt(16)  # kaiming_uniform(a=sqrt 5)
    assert not torch.equal(values["1.bias"], torch.zeros(16))


def test_a_layer_without_initialiser_falls_back_to_glorot_and_a_vector_is_refused():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.zeros(64, 32))
            self.scale = nn.Parameter(torch.ones(32))

    values, how = initialiser_values(Bare(), ["table"], seed=0)
    assert how == "Glorot uniform (no initialiser found)"
    assert float(values["table"].abs().max()) <= math.sqrt(6 / 96)
    with pytest.raises(ValueError, match=r"no initialiser found for 'scale' \(\(32,\)\).*exclude it from the re-init"):
        initialiser_values(Bare(), ["scale"], seed=0)
    with pytest.raises(ValueError, match="has no parameters"):
        initialiser_values(Bare(), ["nope"], seed=0)


def test_hugging_face_model_uses_its_init_weights():
    transformers = pytest.importorskip("transformers")
    config = transformers.MarianConfig(
        vocab_size=500, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
        init_std=0.05, pad_token_id=1, eos_token_id=2, bos_token_id=0, decoder_start_token_id=1, forced_eos_token_id=2)
    model = transformers.MarianMTModel(config)
    names = [n for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    values, how = initialiser_values(model, names, seed=0)
    assert how == "MarianMTModel._init_weights"
    for name in names:  # N(0, init_std), not Glorot
        assert _std_close(values[name], 0.05), name
        assert not torch.equal(values[name], model.get_parameter(name).detach()), name


def test_a_model_assembled_from_parts_draws_each_part_from_its_own_initialiser():
    """nn.Transformer beside an embedding and an output layer (no initialiser covers them all):
    the transformer's tensors come from its _reset_parameters, in_proj_bias included, the others
    from their layers' resets; two layers of one shape draw different values."""

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 16)
            self.transformer = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                              dim_feedforward=32)
            self.out = nn.Linear(16, 50)
            self.other = nn.Linear(16, 50)

    model = Wrapper()
    names = [n for n, _ in model.named_parameters()]
    values, how = initialiser_values(model, names, seed=0)
    assert how == "Embedding.reset_parameters, Linear.reset_parameters, Transformer._reset_parameters"
    assert set(values) == set(names)
    bias = "transformer.encoder.layers.0.self_attn.in_proj_bias"
    assert values[bias].shape == (48,)
    assert not torch.equal(values["out.weight"], values["other.weight"])


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
