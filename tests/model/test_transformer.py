"""The Transformer: documented parameter API, init, padding invariance, the decoding cache."""

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_slt.model.packing import Packing
from lightning_slt.model.transformer import Transformer, TransformerConfig

from ._tiny import BOS, PAD, tiny_config, tiny_model, padded_batch


# ---------------------------------------------------------------- parameter API and init


def expected_parameter_shapes(config: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes documented in the transformer module docstring."""
    d, f = config.d_model, config.d_ff
    shapes = {"embed.weight": (config.vocab_size, d)}
    norm = {"weight": (d,), "bias": (d,)}
    ffn = {"ffn.fc1.weight": (f, d), "ffn.fc1.bias": (f,), "ffn.fc2.weight": (d, f), "ffn.fc2.bias": (d,)}
    for stack, n_layers, blocks in (("encoder", config.encoder_layers, ("self_attn",)),
                                    ("decoder", config.decoder_layers, ("self_attn", "cross_attn"))):
        for i in range(n_layers):
            prefix = f"{stack}.layers.{i}."
            for block in blocks:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    shapes[f"{prefix}{block}.{proj}.weight"] = (d, d)
                for key, shape in norm.items():
                    shapes[f"{prefix}{block}_norm.{key}"] = shape
            shapes.update({prefix + name: shape for name, shape in ffn.items()})
            shapes.update({f"{prefix}ffn_norm.{key}": shape for key, shape in norm.items()})
        if config.pre_norm:
            shapes.update({f"{stack}.norm.{key}": shape for key, shape in norm.items()})
    return shapes


@pytest.mark.parametrize("pre_norm", [True, False])
def test_parameter_names_and_shapes_are_the_documented_api(pre_norm):
    model = tiny_model(pre_norm=pre_norm)
    state = model.state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == expected_parameter_shapes(model.config)
    assert set(state) == {name for name, _ in model.named_parameters()}  # no buffers in checkpoints
    assert len(state) == (65 if pre_norm else 61)
    matrices = [name for name, p in model.named_parameters() if p.dim() >= 2]
    assert len(matrices) == 1 + 2 * 6 + 2 * 10  # embedding, 6 per encoder layer, 10 per decoder layer


def test_embedding_is_tied_to_the_output_projection():
    model = tiny_model()
    hidden = torch.randn(3, 5, 32)
    assert torch.equal(model.logits(hidden), hidden @ model.embed.weight.T)
    assert sum(p is model.embed.weight for p in model.parameters()) == 1
    with torch.no_grad():
        model.embed.weight[7].zero_()
    assert torch.equal(model.logits(hidden)[..., 7], torch.zeros(3, 5))
    model.logits(hidden).sum().backward()  # the projection's gradient lands in the embedding
    assert torch.allclose(model.embed.weight.grad, hidden.sum(dim=(0, 1)).expand(40, 32))


def test_init_follows_tensor2tensor():
    torch.manual_seed(3)
    config = tiny_config(d_model=64, d_ff=256, vocab_size=500)
    model = Transformer(config)
    for name, param in model.named_parameters():
        if name == "embed.weight":
            assert abs(param.std().item() - 64 ** -0.5) < 0.005  # N(0, d^-0.5), 32k draws
            assert abs(param.mean().item()) < 0.003
        elif param.dim() == 2:  # fan_avg uniform
            fan_out, fan_in = param.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert param.abs().max().item() <= bound, name
            assert param.abs().max().item() > 0.97 * bound, name  # fills the interval
            assert abs(param.std().item() - bound / math.sqrt(3)) < 0.03 * bound, name
        elif name.endswith("norm.weight"):
            assert torch.equal(param, torch.ones_like(param)), name
        else:  # biases of the FFN and the LayerNorms
            assert torch.equal(param, torch.zeros_like(param)), name


def test_no_attention_biases_as_in_tensor2tensor():
    names = [name for name, _ in tiny_model().named_parameters()]
    assert not [n for n in names if "_proj.bias" in n]
    assert "encoder.layers.0.ffn.fc1.bias" in names


# ---------------------------------------------------------------- forward and padding


def test_shapes_of_encode_decode_forward_and_logits():
    model = tiny_model()
    src = padded_batch([5, 3, 7])
    tgt = padded_batch([4, 6, 2], seed=2, start_bos=True)
    enc = model.encode(src)
    assert enc.memory.shape == (3, 7, 32) and enc.src_pad.shape == (3, 7)
    assert torch.equal(enc.src_pad, src.eq(PAD))
    hidden = model(src, tgt)
    assert hidden.shape == (3, 6, 32)
    assert model.logits(hidden).shape == (3, 6, 40)
    assert torch.equal(model.decode(tgt, enc), hidden)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_padded_batch_gives_each_sentence_its_own_output(pre_norm):
    model = tiny_model(pre_norm=pre_norm)
    src_lengths, tgt_lengths = [5, 2, 7, 4], [3, 6, 1, 6]
    src = padded_batch(src_lengths)
    tgt = padded_batch(tgt_lengths, seed=2, start_bos=True)
    enc = model.encode(src)
    hidden = model.decode(tgt, enc)
    for row, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
        alone_enc = model.encode(src[row:row + 1, :s])
        alone = model.decode(tgt[row:row + 1, :t], alone_enc)
        torch.testing.assert_close(enc.memory[row, :s], alone_enc.memory[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(hidden[row, :t], alone[0], rtol=0, atol=1e-5)
        assert torch.equal(enc.memory[row, s:], torch.zeros_like(enc.memory[row, s:]))  # pads are zero
        assert torch.equal(hidden[row, t:], torch.zeros_like(hidden[row, t:]))


def test_gradients_of_a_padded_batch_equal_the_sum_over_sentences():
    """Packing real tokens as rows must not change the backward pass either (float64, exact to 1e-10)."""
    model = tiny_model(dropout=0.0).double()
    src = padded_batch([4, 6, 2])
    tgt = padded_batch([5, 2, 4], seed=2, start_bos=True)

    def loss(src_rows, tgt_rows):
        hidden = model(src_rows, tgt_rows)
        keep = tgt_rows.ne(PAD)
        return model.logits(hidden[keep]).log_softmax(-1)[:, 5].sum()

    batch_grads = torch.autograd.grad(loss(src, tgt), list(model.parameters()))
    total = None
    for row, (s, t) in enumerate(zip([4, 6, 2], [5, 2, 4])):
        grads = torch.autograd.grad(loss(src[row:row + 1, :s], tgt[row:row + 1, :t]), list(model.parameters()))
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
    for (name, _), batch_grad, summed in zip(model.named_parameters(), batch_grads, total):
        torch.testing.assert_close(batch_grad, summed, rtol=0, atol=1e-10, msg=name)


def test_all_padding_source_is_rejected():
    model = tiny_model()
    src = padded_batch([3, 2])
    src[1] = PAD
    with pytest.raises(ValueError, match="every source sentence needs at least one non-padding token"):
        model.encode(src)


def test_too_long_input_names_max_positions():
    model = tiny_model(max_positions=8)
    with pytest.raises(ValueError, match="needs positions up to 9, but max_positions is 8"):
        model.encode(padded_batch([9]))


def test_dropout_is_active_in_training_only_and_broadcast_over_positions():
    model = tiny_model(dropout=0.3)
    src, tgt = padded_batch([5, 3]), padded_batch([4, 4], seed=2, start_bos=True)
    assert torch.equal(model(src, tgt), model(src, tgt))  # eval: deterministic
    model.train()
    assert not torch.equal(model(src, tgt), model(src, tgt))
    elementwise_model = tiny_model(dropout=0.3, activation_dropout=0.2, dropout_broadcast=False).train()
    assert not torch.equal(elementwise_model(src, tgt), elementwise_model(src, tgt))

    rows = torch.ones(8, 1000)  # sentence 0: rows 0-2, sentence 1: rows 3-7
    packing = Packing(batch=2, length=5, index=torch.tensor([0, 1, 2, 5, 6, 7, 8, 9]))
    dropped = packing.dropout(rows, 0.5, training=True, broadcast=True)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept entries scaled by 1/(1-p)
    assert torch.equal(dropped[0], dropped[2]) and torch.equal(dropped[3], dropped[7])  # one mask per sentence
    assert not torch.equal(dropped[0], dropped[3])
    elementwise = packing.dropout(rows, 0.5, training=True, broadcast=False)
    assert not torch.equal(elementwise[0], elementwise[1])


def test_bf16_autocast_trains():
    """The module may train in bf16-mixed; SDPA then attends in fp32 on CPU and returns bf16."""
    model = tiny_model().train()
    src, tgt = padded_batch([5, 3]), padded_batch([4, 2], seed=2, start_bos=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.logits(model(src, tgt)[tgt.ne(PAD)])
        loss = F.cross_entropy(logits.float(), tgt[tgt.ne(PAD)])
    loss.backward()
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ---------------------------------------------------------------- incremental decoding


@pytest.mark.parametrize("pre_norm,capacity", [(True, 32), (False, 32), (True, 1), (True, 5)])
def test_cached_decoding_matches_full_decoding(pre_norm, capacity):
    model = tiny_model(pre_norm=pre_norm)
    src = padded_batch([5, 2, 7])
    tgt = padded_batch([6, 6, 6], seed=2, start_bos=True)
    enc = model.encode(src)
    full = model.decode(tgt, enc)  # (B, T, D)

    cache = model.new_cache(enc, capacity=capacity)  # 1 and 5: the buffers grow while decoding
    steps = [model.decode(tgt[:, t:t + 1], enc, cache) for t in range(6)]
    assert cache.length == 6 and cache.self_kv[0].k.size(0) >= 6
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)

    cache = model.new_cache(enc, capacity=capacity)  # a prefix of 4 at once, then 2 more: causal mask with offset
    chunks = [model.decode(tgt[:, :4], enc, cache), model.decode(tgt[:, 4:], enc, cache)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=0, atol=1e-5)


def test_reordered_cache_follows_its_rows_and_shares_memory_per_sentence():
    model = tiny_model()
    src = padded_batch([5, 2, 7])
    tgt = padded_batch([4, 4, 4], seed=2, start_bos=True)
    enc = model.encode(src)
    beams = torch.tensor([0, 0, 1, 1, 2, 2])  # two hypotheses per sentence
    cache = model.reorder_cache(model.new_cache(enc), beams)
    assert cache.group == 2 and cache.cross_k[0].shape[0] == 3  # shared, not copied per beam
    expanded = tgt.index_select(0, beams)
    model.decode(expanded[:, :2], enc, cache)

    # Reselect beams within sentences, then drop sentence 1 (rows 2, 3).
    reselect = torch.tensor([1, 1, 3, 2, 4, 5])
    cache = model.reorder_cache(cache, reselect)
    assert cache.group == 2
    keep = torch.tensor([0, 1, 4, 5])
    cache = model.reorder_cache(cache, keep)
    assert cache.group == 2 and cache.cross_k[0].shape[0] == 2 and cache.batch_size == 4
    rows = reselect[keep]  # which original hypothesis rows the survivors continue
    step = model.decode(expanded[rows, 2:3], enc, cache)

    uncached = model.decode(expanded[rows, :3], model.reorder_encoder_out(enc, beams[rows]))
    torch.testing.assert_close(step[:, 0], uncached[:, 2], rtol=0, atol=1e-5)


def test_reorder_cache_with_uneven_groups_falls_back_to_one_row_per_hypothesis():
    model = tiny_model()
    src = padded_batch([5, 2])
    enc = model.encode(src)
    index = torch.tensor([0, 1, 1, 1])
    cache = model.reorder_cache(model.new_cache(enc), index)
    assert cache.group == 1 and cache.cross_k[0].shape[0] == 4
    tokens = torch.full((4, 1), BOS)
    step = model.decode(tokens, enc, cache)
    full = model.decode(tokens, model.reorder_encoder_out(enc, index))
    torch.testing.assert_close(step, full, rtol=0, atol=1e-5)


def test_decode_rejects_a_cache_of_another_batch_size():
    model = tiny_model()
    enc = model.encode(padded_batch([3, 4]))
    with pytest.raises(ValueError, match="tgt_in has 3 rows but the cache has 2"):
        model.decode(torch.full((3, 1), BOS), enc, model.new_cache(enc))
