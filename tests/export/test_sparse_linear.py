"""Sparse CSR projections: equal to dense, choices per layer, and a drop-in for the Transformer."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_slt.export.sparse_linear import CsrMatmul, SparseLinear, SparseMultiHeadAttention, sparsify_
from lightning_slt.model.search import beam_search, greedy_search
from lightning_slt.model.transformer import Transformer, TransformerConfig


def _prune_(module: nn.Module, sparsity: float, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() >= 2:
                param.mul_(torch.rand(param.shape, generator=generator) >= sparsity).add_(0.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (0,)])
def test_csr_matmul_equals_dense_linear(bias: bool, shape: tuple) -> None:
    linear = nn.Linear(48, 40, bias=bias)
    _prune_(linear, 0.9)
    x = torch.randn(*shape, 48) if shape != (0,) else torch.randn(0, 48)
    out = CsrMatmul(linear.weight, linear.bias)(x)
    expected = linear(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_sparse_linear_keeps_parameters_and_state_dict() -> None:
    linear = nn.Linear(16, 8)
    _prune_(linear, 0.8)
    sparse = SparseLinear(linear)
    assert sparse.weight is linear.weight and sparse.bias is linear.bias
    assert list(sparse.state_dict()) == ["weight", "bias"]
    x = torch.randn(7, 16)
    torch.testing.assert_close(sparse(x), linear(x), rtol=0, atol=1e-5)


class _Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Linear(64, 256)
        self.narrow = nn.Linear(256, 64)
        self.dense = nn.Linear(64, 64)

    def forward(self, x):
        return self.dense(self.narrow(torch.relu(self.wide(x))))


def test_modes_on_off_and_min_sparsity() -> None:
    model = _Stack()
    _prune_(model.wide, 0.9)
    _prune_(model.narrow, 0.95)
    x = torch.randn(10, 64)
    expected = model(x)

    off = copy.deepcopy(model)
    assert sparsify_(off, "off") == []
    assert all(type(m) is nn.Linear for m in (off.wide, off.narrow, off.dense))

    on = copy.deepcopy(model)
    choices = sparsify_(on, "on", rows=10, min_sparsity=0.5)
    assert [(c.name, c.sparse, c.dense_ms) for c in choices] == [
        ("wide", True, None), ("narrow", True, None), ("dense", False, None)]
    assert [c.sparsity for c in choices] == [
        round(1 - int((model.wide.weight != 0).sum()) / model.wide.weight.numel(), 4),
        round(1 - int((model.narrow.weight != 0).sum()) / model.narrow.weight.numel(), 4),
        0.0,
    ]
    assert type(on.wide) is SparseLinear and type(on.narrow) is SparseLinear and type(on.dense) is nn.Linear
    torch.testing.assert_close(on(x), expected, rtol=0, atol=1e-5)
    assert on.state_dict().keys() == model.state_dict().keys()


def test_auto_times_each_candidate_and_follows_the_timing(monkeypatch) -> None:
    """'auto' keeps sparse exactly where the (here: scripted) timing says sparse is faster."""
    scripted = {256: (1.0, 0.5), 64: (1.0, 2.0)}  # out_features -> (dense ms, sparse ms)
    calls = []

    def fake_timing(weight, bias, matmul, rows, repeats):
        calls.append((tuple(weight.shape), rows, repeats))
        return scripted[weight.size(0)]

    monkeypatch.setattr("lightning_slt.export.sparse_linear._time_dense_vs_sparse", fake_timing)
    model = _Stack()
    _prune_(model, 0.9)
    choices = sparsify_(model, "auto", rows=12, repeats=3)
    assert [(c.name, c.dense_ms, c.sparse_ms, c.sparse) for c in choices] == [
        ("wide", 1.0, 0.5, True), ("narrow", 1.0, 2.0, False), ("dense", 1.0, 2.0, False)]
    assert calls == [((256, 64), 12, 3), ((64, 256), 12, 3), ((64, 64), 12, 3)]
    assert type(model.wide) is SparseLinear and type(model.narrow) is nn.Linear


def test_auto_times_real_kernels_and_reports_positive_medians() -> None:
    model = _Stack()
    _prune_(model, 0.95)
    choices = sparsify_(model, "auto", rows=4, repeats=3)
    assert len(choices) == 3
    assert all(c.dense_ms > 0 and c.sparse_ms > 0 and c.sparse == (c.sparse_ms < c.dense_ms) for c in choices)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"mode must be one of \('auto', 'on', 'off'\), got 'fast'"):
        sparsify_(_Stack(), "fast")
    with pytest.raises(ValueError, match="rows, encoder_rows and repeats must be >= 1, got 0, None, 15"):
        sparsify_(_Stack(), "on", rows=0)
    with pytest.raises(ValueError, match=r"min_sparsity must be in \[0, 1\], got 2"):
        sparsify_(_Stack(), "on", min_sparsity=2)


def _tiny_transformer(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size=97, d_model=32, n_heads=4, encoder_layers=2, decoder_layers=2, d_ff=64,
                               max_positions=64)
    model = Transformer(config).eval()
    _prune_(model, 0.9, seed)
    return model


def test_transformer_swaps_fused_attention_and_tied_output_projection() -> None:
    model = _tiny_transformer()
    sparse = copy.deepcopy(model)
    choices = sparsify_(sparse, "on", rows=3, encoder_rows=12)
    names = [c.name for c in choices]
    assert "encoder.layers.0.self_attn.qkv(fused)" in names
    assert "decoder.layers.1.cross_attn.kv(fused)" in names
    assert "decoder.layers.1.cross_attn.q_proj" in names and "decoder.layers.1.self_attn.out_proj" in names
    assert "decoder.layers.1.self_attn.q_proj" not in names  # only read through the fused q/k/v
    assert names[-1] == "logits(embed.weight)"
    rows = {c.name: c.rows for c in choices}
    assert rows["encoder.layers.0.ffn.fc1"] == 12 and rows["decoder.layers.0.cross_attn.kv(fused)"] == 12
    assert rows["decoder.layers.0.ffn.fc1"] == 3 and rows["logits(embed.weight)"] == 3
    assert isinstance(sparse.decoder.layers[0].self_attn, SparseMultiHeadAttention)
    assert sparse.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(sparse.state_dict()[name], tensor)

    src = torch.randint(4, 97, (5, 9))
    src[1, 6:] = model.config.pad_id  # padding exercises the key masks
    with torch.inference_mode():
        enc, enc_sparse = model.encode(src), sparse.encode(src)
        torch.testing.assert_close(enc_sparse.memory, enc.memory, rtol=0, atol=1e-5)
        tgt = torch.randint(4, 97, (5, 4))
        hidden, hidden_sparse = model.decode(tgt, enc), sparse.decode(tgt, enc_sparse)
        torch.testing.assert_close(hidden_sparse, hidden, rtol=0, atol=1e-5)
        torch.testing.assert_close(sparse.logits(hidden), model.logits(hidden), rtol=0, atol=1e-5)
        assert sparse.logits(hidden).is_contiguous()  # argmax over a strided vocabulary is 9x slower


def test_attention_over_csr_projections_takes_the_fused_sdpa_kernel(monkeypatch) -> None:
    """CSR outputs are transposed views; attention must still see unit-stride head dims."""
    sparse = _tiny_transformer()
    sparsify_(sparse, "on", rows=3, encoder_rows=12)
    strides = []
    original = F.scaled_dot_product_attention

    def recording(q, k, v, *args, **kwargs):
        strides.append((q.stride(-1), k.stride(-1), v.stride(-1)))
        return original(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    greedy_search(sparse, torch.randint(4, 97, (3, 7)), max_len_b=3)
    assert strides and set(strides) == {(1, 1, 1)}


def test_transformer_greedy_and_beam_outputs_are_identical() -> None:
    model = _tiny_transformer(seed=1)
    sparse = copy.deepcopy(model)
    sparsify_(sparse, "on")
    src = torch.randint(4, 97, (6, 11))
    src[2, 5:] = model.config.pad_id
    assert greedy_search(sparse, src, max_len_b=8) == greedy_search(model, src, max_len_b=8)
    assert beam_search(sparse, src, beam_size=3, max_len_b=8) == beam_search(model, src, beam_size=3, max_len_b=8)


def test_sparse_attention_respects_train_and_eval_mode() -> None:
    model = _tiny_transformer()
    model.config.attention_dropout = 0.0
    sparsify_(model, "on")
    attention = model.decoder.layers[0].self_attn
    assert isinstance(attention, SparseMultiHeadAttention) and attention.training is False
    model.train()
    assert attention.training is True


def test_wrapped_transformer_keeps_encoder_rows_and_output_projection() -> None:
    """sparsify_ on a wrapper (as a LightningModule holds ``.model``) finds the encoder and the logits."""
    wrapper = nn.Module()
    wrapper.model = _tiny_transformer()
    choices = {c.name: c for c in sparsify_(wrapper, "on", rows=2, encoder_rows=20)}
    assert choices["model.encoder.layers.0.ffn.fc1"].rows == 20
    assert choices["model.encoder.layers.1.self_attn.qkv(fused)"].rows == 20
    assert choices["model.decoder.layers.0.ffn.fc2"].rows == 2
    assert choices["model.logits(embed.weight)"].rows == 2
    hidden = torch.randn(3, 32)
    torch.testing.assert_close(wrapper.model.logits(hidden), F.linear(hidden, wrapper.model.embed.weight),
                               rtol=0, atol=1e-5)
