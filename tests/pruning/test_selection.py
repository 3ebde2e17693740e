"""Which parameters are pruned: torch's own modules (the fused ``in_proj_weight`` of
``nn.Transformer``; biases and norms left out; a tied embedding once), include/exclude patterns,
and the default selection on models we did not write: Hugging Face Marian/Pegasus (frozen sinusoidal
position tables, ``final_logits_bias``) and ``nn.MultiheadAttention(add_bias_kv=True)`` (3-dim
``bias_k``/``bias_v``). Only trainable matrices are pruned, at exact per-tensor counts; the rest
stays bit-identical through real lottery rounds. Random weights, nothing downloaded."""

import pytest
import torch
from torch import nn

from lightning_slt import ConvergedMask, GradualMagnitudePruning, WeightRewind
from lightning_slt.callbacks.base import session_of
from lightning_slt.pruning import ParameterMasks, magnitude_masks, prunable_parameters

from ..callbacks.tiny import Probe, make_trainer
from ._foreign import POSITIONS, Seq2Seq, marian, pegasus


def _frozen_and_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    out = {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}
    out.update({n: b.detach().clone() for n, b in module.named_buffers()})
    return out


def _bits_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def _expected(module: nn.Module, sparsity: float) -> dict[str, int]:
    """round(s * n) for each trainable matrix; the old default (every >= 2-dim parameter) also
    pruned the frozen position tables, which would show up here as extra names."""
    return {n: round(sparsity * p.numel()) for n, p in module.named_parameters()
            if p.requires_grad and p.dim() >= 2}


@pytest.mark.parametrize("build", [marian, pegasus])
def test_default_skips_frozen_position_tables_and_biases(build):
    model = build()
    named = dict(model.named_parameters())
    for name in POSITIONS:
        assert name in named and not named[name].requires_grad and named[name].dim() == 2
    assert "final_logits_bias" in dict(model.named_buffers())  # a buffer here: never a parameter to prune
    chosen = prunable_parameters(model)
    assert not set(POSITIONS) & set(chosen)
    assert all(p.requires_grad and p.dim() >= 2 and not n.endswith("bias") for n, p in chosen.items())
    assert "model.shared.weight" in chosen and "model.encoder.layers.0.self_attn.q_proj.weight" in chosen
    assert chosen.keys() == _expected(model, 0.8).keys()
    # on purpose, by pattern
    assert list(prunable_parameters(model, include=["*.embed_positions.weight"])) == list(POSITIONS)


def test_magnitude_masks_prune_exact_counts_and_leave_the_tables_alone():
    model = marian()
    before = _frozen_and_buffers(model)
    params = prunable_parameters(model)
    masks = magnitude_masks({n: p.detach() for n, p in params.items()}, 0.8)
    ParameterMasks(params).set_masks_(masks)
    assert {n: int((~m).sum()) for n, m in masks.items()} == _expected(model, 0.8)
    assert {n: int((p == 0).sum()) for n, p in params.items()} == _expected(model, 0.8)
    assert _bits_equal(_frozen_and_buffers(model), before)
    assert all(int((model.get_parameter(n) == 0).sum()) == int((before[n] == 0).sum()) for n in POSITIONS)


def test_gradual_magnitude_pruning_trains_marian_at_exact_sparsity():
    module = Seq2Seq(marian())
    before = _frozen_and_buffers(module)
    trainer = make_trainer(4, [GradualMagnitudePruning(0.8, end_step=4, frequency=2)])
    trainer.fit(module)
    assert trainer.global_step == 4
    expected = {f"model.{n}": k for n, k in _expected(module.model, 0.8).items()}
    masks = session_of(trainer).masks.masks
    assert {n: int((~m).sum()) for n, m in masks.items()} == expected
    assert {n: int((module.get_parameter(n) == 0).sum()) for n in expected} == expected
    assert _bits_equal(_frozen_and_buffers(module), before)


def test_a_lottery_round_on_marian_keeps_the_frozen_tables(tmp_path):
    dense = Seq2Seq(marian(0))
    tables = _frozen_and_buffers(dense)
    rewind = WeightRewind(step=0)
    trainer = make_trainer(3, [rewind])
    trainer.fit(dense)
    trainer.save_checkpoint(tmp_path / "dense.ckpt")
    ticket = Seq2Seq(marian(1))  # another init: every trainable weight must come from θ0 of the dense run
    theta0 = rewind.snapshot
    probe = Probe()
    trainer = make_trainer(2, [ConvergedMask(str(tmp_path / "dense.ckpt"), 0.8),
                               WeightRewind(step=0, source=str(tmp_path / "dense.ckpt")), probe])
    trainer.fit(ticket)
    assert trainer.global_step == 2 and probe.start
    expected = {f"model.{n}": k for n, k in _expected(ticket.model, 0.8).items()}
    masks = session_of(trainer).masks.masks
    assert {n: int((~m).sum()) for n, m in masks.items()} == expected
    assert {n: int((ticket.get_parameter(n) == 0).sum()) for n in expected} == expected
    assert _bits_equal(_frozen_and_buffers(ticket), tables)
    kept = {n: torch.where(masks[n], theta0[n], torch.zeros(())) if n in masks else theta0[n] for n in theta0}
    assert all(torch.equal(probe.start[n], kept[n]) for n in theta0)


def test_multihead_attention_bias_kv_is_pruned_only_on_purpose():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(embed_dim=16, num_heads=2, add_bias_kv=True)
    assert attn.bias_k.dim() == 3 and attn.bias_v.dim() == 3
    assert list(prunable_parameters(attn)) == ["in_proj_weight", "out_proj.weight"]
    chosen = prunable_parameters(attn, include=["bias_k", "bias_v", "in_proj_weight"])
    assert list(chosen) == ["in_proj_weight", "bias_k", "bias_v"]
    masks = magnitude_masks({n: p.detach() for n, p in chosen.items()}, 0.5)
    assert {n: int((~m).sum()) for n, m in masks.items()} == {"in_proj_weight": 384, "bias_k": 8, "bias_v": 8}
    assert list(prunable_parameters(attn, exclude=["out_proj.*"])) == ["in_proj_weight"]


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
