"""Encoder-decoder Transformer (Vaswani et al., 2017) as tensor2tensor's ``transformer_base``.

Written for lottery-ticket pruning: every weight matrix is its own ``nn.Parameter`` under a
stable name, so a mask or an include/exclude pattern can address each one (the paper prunes
each matrix with its own threshold, and tensor2tensor has separate q/k/v matrices).

What follows tensor2tensor (the paper's toolkit: footnote 1 names ``transformer_base_v3`` at
t2t commit 838f1a9 "with the corresponding adaptations for TPUs"):
- one embedding shared by source, target and the output projection, scaled by sqrt(d_model)
  on the way in, plus sinusoidal positions (``get_timing_signal_1d``: sines, then cosines);
- attention projections without biases (t2t ``compute_qkv`` / ``output_transform``), ReLU
  feed-forward with biases, LayerNorm eps 1e-6;
- pre-norm with a final LayerNorm on encoder and decoder output (t2t v2), or post-norm (v1);
- sublayer and ReLU dropout masks shared by all positions of a sentence, as t2t's TPU hparams
  set them (``update_hparams_for_tpu``: ``*_dropout_broadcast_dims = "1"``);
  ``dropout_broadcast=False`` gives Vaswani's elementwise dropout;
- init: Glorot fan_avg uniform, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), for every
  linear weight; zero biases; embedding N(0, d_model**-0.5).

Speed on CPU. Position-wise work (embedding, LayerNorm, projections, feed-forward, dropout)
runs on the real tokens only, packed as rows of an (N, D) matrix: padding costs no GEMM work.
Only attention sees the padded (B, H, T, hd) layout, through ``F.scaled_dot_product_attention``
with ``is_causal=True`` and no mask in decoder self-attention (right padding: a real position
never looks at a later pad) and a (B, 1, 1, S) key-padding mask only when a batch has padding.
q/k/v (self-attention) and k/v (cross-attention) cost one GEMM each, their weights being
concatenated at run time. Incremental decoding keeps a ``DecoderCache`` whose cross-attention
K/V are computed once per source sentence and shared by all its beam hypotheses.

The parts stand in their own modules: ``config`` (TransformerConfig), ``packing`` (real tokens
as rows), ``attention``, ``kv_cache`` (DecoderCache), ``layers`` (feed-forward, layers, stacks);
this one assembles them and drives encoding and incremental decoding.

Parameter names (stable API; pruning masks and patterns key on them). D = d_model,
F = d_ff, V = vocab_size, i = layer index:

    embed.weight                                   (V, D)  source/target embedding = output projection
    encoder.layers.{i}.self_attn.q_proj.weight     (D, D)  also k_proj, v_proj, out_proj; no biases
    encoder.layers.{i}.self_attn_norm.weight       (D,)    and .bias
    encoder.layers.{i}.ffn.fc1.weight              (F, D)  and .bias (F,)
    encoder.layers.{i}.ffn.fc2.weight              (D, F)  and .bias (D,)
    encoder.layers.{i}.ffn_norm.weight             (D,)    and .bias
    encoder.norm.weight                            (D,)    and .bias; pre-norm only
    decoder.layers.{i}.self_attn.{q,k,v,out}_proj.weight   (D, D)
    decoder.layers.{i}.self_attn_norm.{weight,bias}        (D,)
    decoder.layers.{i}.cross_attn.{q,k,v,out}_proj.weight  (D, D)  q from the decoder, k/v from memory
    decoder.layers.{i}.cross_attn_norm.{weight,bias}       (D,)
    decoder.layers.{i}.ffn.fc1 / ffn.fc2 / ffn_norm        as in the encoder
    decoder.norm.weight                            (D,)    and .bias; pre-norm only

Only parameters with two or more dimensions are meant to be pruned. The sinusoidal table is a
non-persistent buffer, so ``state_dict()`` holds exactly the parameters above.

Shapes: B batch (sentences or hypotheses), S source length, T target length, N real (non-pad)
tokens of a batch, D model width, H heads, hd = D / H, V vocabulary.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_slt.model.attention import MultiHeadAttention
from lightning_slt.model.config import TransformerConfig
from lightning_slt.model.kv_cache import DecoderCache, KVBuffer
from lightning_slt.model.layers import LAYER_NORM_EPS, Decoder, Encoder, sinusoidal_positions
from lightning_slt.model.packing import Packing, key_mask

# Importable from here as before the split (export and user code use these paths).
__all__ = ["LAYER_NORM_EPS", "DecoderCache", "EncoderOut", "KVBuffer", "MultiHeadAttention", "Packing",
           "Transformer", "TransformerConfig", "sinusoidal_positions"]


class EncoderOut(NamedTuple):
    """Encoder output as the decoder and the search read it."""

    memory: Tensor  # (B, S, D) top encoder states; zeros at padded positions
    src_pad: Tensor  # (B, S) bool, True = padding


class Transformer(nn.Module):
    """Encoder-decoder Transformer with a tied embedding and incremental decoding.

    ``forward(src, tgt_in)`` returns decoder hidden states, not logits: the training loss calls
    ``logits`` only on non-padding positions, which saves the (T, V) GEMM on pads. Decoding
    calls ``encode`` once, then ``new_cache`` and ``decode`` per step, with ``reorder_cache``
    / ``reorder_encoder_out`` when beams are reselected (``lightning_slt.model.search``).

    Sequences are right-padded with ``pad_id``; the target input starts with ``bos_id``.
    Every source needs at least one non-padding token.

    Args:
        config: sizes, dropout and special token ids; kept as ``self.config``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, config.d_model),
                             persistent=False)  # (P, D)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """tensor2tensor transformer_base init (fan_avg uniform, zero bias, N(0, D^-0.5) embedding)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                fan_out, fan_in = module.weight.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                module.weight.uniform_(-bound, bound)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        self.embed.weight.normal_(0.0, self.config.d_model ** -0.5)

    def _embed(self, tokens: Tensor, packing: Packing, offset: int = 0) -> Tensor:
        """Rows of dropout(sqrt(D) * embedding + position) (N, D) for tokens (B, T)."""
        if offset + tokens.size(1) > self.config.max_positions:
            raise ValueError(
                f"sequence needs positions up to {offset + tokens.size(1)}, but max_positions is "
                f"{self.config.max_positions}; shorten the input or raise max_positions"
            )
        positions = self.positions.index_select(0, packing.positions(tokens.device) + offset)  # (N, D)
        x = torch.add(positions, self.embed(packing.pack(tokens)), alpha=math.sqrt(self.config.d_model))
        return F.dropout(x, self.config.dropout, self.training)  # (N, D)

    def encode(self, src: Tensor) -> EncoderOut:
        """src (B, S) token ids, right-padded -> EncoderOut(memory (B, S, D), src_pad (B, S))."""
        if src.dim() != 2:
            raise ValueError(f"src must be (batch, length) token ids, got shape {tuple(src.shape)}")
        src_pad = src.eq(self.config.pad_id)  # (B, S)
        if bool(src_pad.all(dim=1).any()):
            raise ValueError("every source sentence needs at least one non-padding token; "
                             f"got an all-padding row (pad_id={self.config.pad_id})")
        packing = Packing.of(src_pad)
        memory = self.encoder(self._embed(src, packing), packing, key_mask(src_pad))  # (N, D)
        return EncoderOut(packing.unpack(memory), src_pad)

    def _memory_kv(self, enc: EncoderOut) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention K/V (B, H, S, hd) of every decoder layer, from the real source rows only."""
        packing = Packing.of(enc.src_pad)
        memory = packing.pack(enc.memory)  # (N_src, D)
        return [layer.cross_attn.memory_kv(memory, packing) for layer in self.decoder.layers]

    def decode(self, tgt_in: Tensor, enc: EncoderOut, cache: DecoderCache | None = None) -> Tensor:
        """Decoder hidden states (B, T, D) for target input tgt_in (B, T), starting with bos.

        Without a cache, tgt_in is the whole prefix (right-padded) and hidden states at padded
        positions are zero. With a cache, tgt_in holds only the new tokens, their positions
        continue from ``cache.length``, the cache grows by them in place, and cross-attention
        reads the K/V and padding mask stored by ``new_cache``.
        """
        if cache is None:
            packing = Packing.of(tgt_in.eq(self.config.pad_id))
            memory_mask, group = key_mask(enc.src_pad), 1
            memory_kv = self._memory_kv(enc)
            self_kv: list[KVBuffer | None] = [None] * len(memory_kv)
        else:
            if tgt_in.size(0) != cache.batch_size:
                raise ValueError(f"tgt_in has {tgt_in.size(0)} rows but the cache has "
                                 f"{cache.batch_size}; reorder the cache together with the batch")
            packing = Packing(tgt_in.size(0), tgt_in.size(1), None)  # new tokens are never padding
            memory_mask, group = cache.cross_mask, cache.group
            memory_kv = list(zip(cache.cross_k, cache.cross_v))
            self_kv = cache.self_kv
        x = self._embed(tgt_in, packing, cache.length if cache is not None else 0)  # (N, D)
        for i, layer in enumerate(self.decoder.layers):
            x = layer(x, packing, *memory_kv[i], memory_mask, group, self_kv[i])
        if self.decoder.norm is not None:
            x = self.decoder.norm(x)
        return packing.unpack(x)  # (B, T, D)

    def logits(self, hidden: Tensor) -> Tensor:
        """hidden (..., D) -> (..., V) through the tied output projection (the embedding)."""
        return F.linear(hidden, self.embed.weight)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """src (B, S), tgt_in (B, T) -> decoder hidden states (B, T, D); see ``logits``."""
        return self.decode(tgt_in, self.encode(src))

    def new_cache(self, enc: EncoderOut, capacity: int = 32) -> DecoderCache:
        """An empty self-attention cache and the cross-attention K/V of every decoder layer.

        ``capacity``: target tokens to reserve room for (the cache grows past it if needed).
        """
        batch, heads = enc.memory.size(0), self.config.n_heads
        memory_kv = self._memory_kv(enc)
        return DecoderCache(
            self_kv=[KVBuffer.empty(enc.memory, batch, heads, self.config.d_model // heads, max(capacity, 1))
                     for _ in memory_kv],
            cross_k=[k for k, _ in memory_kv], cross_v=[v for _, v in memory_kv],
            cross_mask=key_mask(enc.src_pad), group=1,
        )

    @staticmethod
    def reorder_encoder_out(enc: EncoderOut, index: Tensor) -> EncoderOut:
        """Rows ``index`` (N,) of the encoder output: expand to beams, reselect, drop finished."""
        return EncoderOut(enc.memory.index_select(0, index), enc.src_pad.index_select(0, index))

    @staticmethod
    def reorder_cache(cache: DecoderCache, index: Tensor) -> DecoderCache:
        """A cache whose hypothesis row j is row ``index[j]`` of ``cache`` (index (N',) long).

        Used to expand sentences to beams, follow the beams a search step keeps and drop
        finished sentences. Cross-attention K/V are copied only when the set of source rows
        changes; while each source's hypotheses stay consecutive and equally many, they keep
        sharing one copy (``group``). The given cache is left unchanged.
        """
        if index.dim() != 1 or index.numel() == 0:
            raise ValueError(f"index must be a non-empty 1-D LongTensor, got shape {tuple(index.shape)}")
        src_rows = torch.div(index, cache.group, rounding_mode="floor")  # (N',) source row per hypothesis
        sources, counts = torch.unique_consecutive(src_rows, return_counts=True)
        group = int(counts[0]) if bool((counts == counts[0]).all()) else 1
        if group == 1:
            sources = src_rows
        cross_k, cross_v, cross_mask = cache.cross_k, cache.cross_v, cache.cross_mask
        unchanged = sources.numel() == cross_k[0].size(0) and bool(
            (sources == torch.arange(sources.numel(), device=sources.device)).all())
        if not unchanged:
            cross_k = [k.index_select(0, sources) for k in cross_k]
            cross_v = [v.index_select(0, sources) for v in cross_v]
            cross_mask = cross_mask.index_select(0, sources) if cross_mask is not None else None
        return DecoderCache(
            self_kv=[kv.select(index) for kv in cache.self_kv],
            cross_k=cross_k, cross_v=cross_v, cross_mask=cross_mask, group=group,
        )
