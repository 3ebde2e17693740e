"""The CPU bf16 attention kernel computes SDPA's attention; the bf16 matmul unit is read from the CPU flags."""

import pytest
import torch
import torch.nn.functional as F

import lightning_slt.model.attention as attention
from lightning_slt import _runtime


def _inputs(batch=3, heads=4, length=9, head_dim=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, head_dim, generator=generator) for _ in range(3)]


def _padding_mask(batch=3, length=9):
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    mask[1, ..., 6:] = False  # sentence 1 has 6 real keys
    return mask


@pytest.mark.parametrize("case", ["full", "padded", "causal"])
def test_bf16_attention_computes_sdpa(case):
    q, k, v = _inputs()
    mask, causal = (_padding_mask() if case == "padded" else None), case == "causal"
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    # in fp32 the composition is SDPA's computation up to rounding ...
    torch.testing.assert_close(attention._bf16_attention(q, k, v, mask, causal, 0.0), expected, rtol=0, atol=2e-6)
    # ... and in bf16 within bf16's resolution (inputs of unit scale: outputs below 3)
    out = attention._bf16_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, causal, 0.0)
    assert out.dtype == torch.bfloat16
    assert (out.float() - expected).abs().max() < 0.03


def test_bf16_attention_gradients_match_sdpa():
    q, k, v = (t.requires_grad_() for t in _inputs(length=7))
    F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    expected = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    attention._bf16_attention(q, k, v, None, True, 0.0).square().sum().backward()
    for t, grad in zip((q, k, v), expected):  # fp32 rounding of sums of 64 products, relative to the gradient's scale
        torch.testing.assert_close(t.grad, grad, rtol=0, atol=2e-6 * float(grad.abs().max()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_queries_on_cpu_take_the_composition_and_fp32_takes_sdpa(monkeypatch, dtype):
    """The composition was the faster step on both CPU kinds measured (with and without AMX)."""
    calls = []
    original = attention._bf16_attention
    monkeypatch.setattr(attention, "_bf16_attention", lambda *a: calls.append(1) or original(*a))
    q, k, v = (t.to(dtype) for t in _inputs())
    out = attention._sdpa(q, k, v, None, True, 0.0)
    assert out.dtype == dtype and calls == [1]
    expected = F.scaled_dot_product_attention(*(t.float() for t in (q, k, v)), is_causal=True)
    assert (out.float() - expected).abs().max() < 0.03
    calls.clear()
    attention._sdpa(*(t.float() for t in (q, k, v)), None, True, 0.0)  # fp32 always goes to SDPA
    assert not calls


@pytest.mark.parametrize("flags, isa, unit", [
    ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "", "AMX"),
    ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "AVX512_CORE_BF16", "AVX512-BF16"),
    ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "avx512_core_amx", "AMX"),
    ({"avx512f", "avx512_bf16"}, "", "AVX512-BF16"),
    ({"avx512f", "avx512_bf16"}, "AVX2", "none"),
    ({"avx2"}, "", "none"),
])
def test_the_bf16_matmul_unit_follows_the_cpu_flags_and_onednn_max_cpu_isa(monkeypatch, flags, isa, unit):
    monkeypatch.setattr(_runtime, "_cpu_model_and_flags", lambda: ("Test CPU", flags))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert _runtime.bf16_matmul_unit() == unit
    assert _runtime.amx_state() == ("available" if unit == "AMX" else "disabled" if "amx_bf16" in flags else "absent")
    description = _runtime.cpu_description()
    assert description.startswith("Test CPU, ") and description.endswith(
        unit + (" (AMX disabled)" if unit != "AMX" and "amx_bf16" in flags else ""))


def test_cached_bf16_decoding_matches_full_decoding():
    """Validation and translation under bf16 autocast take the bf16 kernel with cache masks (offset causal)."""
    from tests.model.test_transformer import padded_batch, tiny_model

    model = tiny_model(pre_norm=True).eval()
    src = padded_batch([5, 2, 7])
    tgt = padded_batch([6, 6, 6], seed=2, start_bos=True)
    with torch.no_grad():
        reference = model.decode(tgt, model.encode(src))  # fp32, SDPA
        with torch.autocast("cpu", dtype=torch.bfloat16):
            enc = model.encode(src)
            full = model.decode(tgt, enc)
            cache = model.new_cache(enc, capacity=5)
            chunks = [model.decode(tgt[:, :4], enc, cache), model.decode(tgt[:, 4:], enc, cache)]
            cache = model.new_cache(enc, capacity=1)
            steps = [model.decode(tgt[:, t:t + 1], enc, cache) for t in range(6)]
    scale = reference.abs().max()
    for decoded in (full, torch.cat(chunks, dim=1), torch.cat(steps, dim=1)):
        assert (decoded.float() - reference).abs().max() < 0.05 * scale
    assert (torch.cat(chunks, dim=1).float() - full.float()).abs().max() < 0.05 * scale
