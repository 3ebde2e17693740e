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
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_NORM_EPS = 1e-6  # tensor2tensor's layer_norm epsilon


@dataclass
class TransformerConfig:
    """Sizes and regularisation of a ``Transformer``; defaults are transformer_base's."""

    vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1  # on embeddings and on every sublayer output before the residual add
    attention_dropout: float = 0.0  # on attention weights (elementwise, inside SDPA)
    activation_dropout: float = 0.0  # after the FFN's ReLU (t2t "relu_dropout")
    pre_norm: bool = True  # True: t2t v2 (LayerNorm before each sublayer); False: Vaswani/t2t v1
    max_positions: int = 1024  # rows of the sinusoidal table: longest source or target
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    # Sublayer and ReLU dropout draw one mask per sentence and channel, shared by its positions
    # (t2t TPU hparams, which the paper used); T times fewer random numbers, most of dropout's
    # CPU cost. False: a fresh mask entry per position (Vaswani). Embedding dropout is always
    # elementwise, as in t2t.
    dropout_broadcast: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "encoder_layers", "decoder_layers",
                     "d_ff", "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model} and "
                f"n_heads={self.n_heads}; pick n_heads among the divisors of d_model"
            )
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be in [0, vocab_size={self.vocab_size}), got {value!r}")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(
                f"pad_id, bos_id and eos_id must differ, got {self.pad_id}, {self.bos_id}, {self.eos_id}"
            )


class EncoderOut(NamedTuple):
    """Encoder output as the decoder and the search read it."""

    memory: Tensor  # (B, S, D) top encoder states; zeros at padded positions
    src_pad: Tensor  # (B, S) bool, True = padding


class KVBuffer:
    """Self-attention keys and values of one decoder layer, stored time-major: (capacity, N, H, hd).

    Appending T tokens writes them in place, where ``torch.cat`` would copy the whole prefix at
    every step (quadratic in the output length: 6 % of sparse greedy decoding time on
    transformer_base shapes). Capacity doubles when full. Attention reads (N, H, t, hd) views
    whose head dims stay unit-stride, as SDPA's fused kernel wants; reordering rows copies the
    filled part only, in one contiguous ``index_select``.
    """

    def __init__(self, keys: Tensor, values: Tensor, length: int = 0) -> None:
        self.k, self.v = keys, values  # (capacity, N, H, hd)
        self.length = length

    @staticmethod
    def empty(like: Tensor, batch: int, heads: int, head_dim: int, capacity: int = 32) -> "KVBuffer":
        """An empty buffer with the dtype and device of `like`."""
        return KVBuffer(like.new_empty(capacity, batch, heads, head_dim), like.new_empty(capacity, batch, heads, head_dim))

    @property
    def batch_size(self) -> int:
        return self.k.size(1)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add k, v (N, H, T, hd) after the stored tokens; returns all keys, values (N, H, t + T, hd)."""
        end = self.length + k.size(2)
        if end > self.k.size(0):
            self._grow(max(end, 2 * self.k.size(0)))
        self.k[self.length:end] = k.permute(2, 0, 1, 3)
        self.v[self.length:end] = v.permute(2, 0, 1, 3)
        self.length = end
        return self.k[:end].permute(1, 2, 0, 3), self.v[:end].permute(1, 2, 0, 3)

    def _grow(self, capacity: int) -> None:
        keys, values = self.k.new_empty(capacity, *self.k.shape[1:]), self.v.new_empty(capacity, *self.v.shape[1:])
        keys[:self.length], values[:self.length] = self.k[:self.length], self.v[:self.length]
        self.k, self.v = keys, values

    def select(self, index: Tensor) -> "KVBuffer":
        """A new buffer whose row j is row ``index[j]`` of this one (same capacity)."""
        shape = (self.k.size(0), index.numel(), *self.k.shape[2:])
        keys, values = self.k.new_empty(shape), self.v.new_empty(shape)
        for old, new in ((self.k, keys), (self.v, values)):
            if old.requires_grad:  # out= has no autograd; decoding under inference_mode takes the other path
                new[:self.length] = old[:self.length].index_select(1, index)
            else:
                torch.index_select(old[:self.length], 1, index, out=new[:self.length])
        return KVBuffer(keys, values, self.length)


@dataclass
class DecoderCache:
    """Key/value cache for incremental decoding, one entry per decoder layer.

    Self-attention K/V grow by the new tokens on every ``decode`` call (``KVBuffer``).
    Cross-attention K/V are computed once by ``Transformer.new_cache`` and kept per *source*
    row: hypothesis row j reads source row ``j // group``, so the ``group`` beams of one
    sentence share them and attend to them as one block of queries (no copy per beam, no
    reorder per step).
    """

    self_kv: list[KVBuffer]  # per layer, N hypotheses, t tokens decoded so far
    cross_k: list[Tensor]  # per layer (N / group, H, S, hd)
    cross_v: list[Tensor]
    cross_mask: Tensor | None  # (N / group, 1, 1, S) bool, True = attend; None = no padding
    group: int = 1

    @property
    def length(self) -> int:
        """Target tokens decoded so far (the position of the next token)."""
        return self.self_kv[0].length

    @property
    def batch_size(self) -> int:
        """Hypothesis rows N."""
        return self.self_kv[0].batch_size


def sinusoidal_positions(max_positions: int, d_model: int) -> Tensor:
    """(P, D) timing signal of tensor2tensor's ``get_timing_signal_1d``: sines, then cosines.

    Timescales run geometrically from 1 to 10^4 over D/2 channels (Vaswani et al. §3.5). An odd
    D gets a zero last channel.
    """
    half = d_model // 2
    position = torch.arange(max_positions, dtype=torch.float64)[:, None]  # (P, 1)
    log_increment = math.log(1.0e4) / max(half - 1, 1)
    inv_timescales = torch.exp(torch.arange(half, dtype=torch.float64) * -log_increment)  # (D/2,)
    angles = position * inv_timescales[None, :]  # (P, D/2)
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (P, 2 * (D/2))
    return F.pad(table, (0, d_model % 2)).float()  # (P, D)


class _ScatterRows(torch.autograd.Function):
    """rows (N, C) -> (total, C): zeros except row ``index[i]`` = rows[i], for unique indices.

    Its backward is one ``index_select``; ``index_put_``'s generic autograd path made the
    forward + backward 37 % slower (3.0 vs 2.2 ms for one attention input of a
    transformer_cpu batch, 12 of them per step).
    """

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor, total: int) -> Tensor:
        ctx.save_for_backward(index)
        return rows.new_zeros(total, rows.size(1)).index_copy_(0, index, rows)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None, None


class Packing(NamedTuple):
    """Where the N real tokens of a right-padded (B, L) batch sit, for packing them as rows.

    Position-wise layers run on (N, C) rows; attention unpacks them to (B, L, C) and back.
    ``index`` is None when nothing is padded: rows are then a plain view of (B, L, C).
    """

    batch: int
    length: int
    index: Tensor | None  # (N,) flat positions b * L + t of the real tokens, ascending

    @staticmethod
    def of(pad: Tensor) -> "Packing":
        """Packing of a (B, L) bool padding mask (True = pad)."""
        batch, length = pad.shape
        index = (~pad).flatten().nonzero().squeeze(1) if bool(pad.any()) else None  # (N,)
        return Packing(batch, length, index)

    def positions(self, device: torch.device) -> Tensor:
        """(N,) position t of every row within its sentence."""
        if self.index is None:
            return torch.arange(self.length, device=device).repeat(self.batch)
        return self.index % self.length

    def pack(self, padded: Tensor) -> Tensor:
        """(B, L, ...) -> (N, ...), the real positions only."""
        flat = padded.flatten(0, 1)  # (B*L, ...)
        return flat if self.index is None else flat.index_select(0, self.index)

    def unpack(self, rows: Tensor) -> Tensor:
        """(N, C) -> (B, L, C) with zeros at padded positions."""
        if self.index is None:
            return rows.view(self.batch, self.length, rows.size(1))
        padded = _ScatterRows.apply(rows, self.index, self.batch * self.length)  # (B*L, C)
        return padded.view(self.batch, self.length, rows.size(1))

    def pack_heads(self, heads: Tensor) -> Tensor:
        """Attention output (B, H, L, hd) -> rows (N, H * hd).

        index_select, not advanced indexing: its backward is an index_add, where advanced
        indexing's is an accumulating index_put that sorts the indices (35 ms of a 0.9 s
        transformer_cpu step).
        """
        rows = heads.transpose(1, 2).reshape(self.batch * self.length, -1)  # (B*L, H*hd)
        return rows if self.index is None else rows.index_select(0, self.index)

    def dropout(self, rows: Tensor, p: float, training: bool, broadcast: bool) -> Tensor:
        """Dropout of rows (N, C); with ``broadcast`` one (C,) mask per sentence serves all its rows.

        The broadcast form is tensor2tensor's ``dropout_with_broadcast_dims`` over the length
        axis (see ``TransformerConfig.dropout_broadcast``).
        """
        if not training or p == 0.0:
            return rows
        if not broadcast:
            return F.dropout(rows, p, training=True)
        keep = rows.new_empty(self.batch, 1, rows.size(1)).bernoulli_(1.0 - p).div_(1.0 - p)  # (B, 1, C)
        if self.index is None:
            return (rows.view(self.batch, self.length, -1) * keep).view_as(rows)
        return rows * keep.squeeze(1).index_select(0, self.index // self.length)  # (N, C)


def _key_mask(src_pad: Tensor) -> Tensor | None:
    """(B, S) padding flags -> (B, 1, 1, S) bool "may attend" mask, or None without padding.

    None lets SDPA skip masking altogether, the common case for length-bucketed batches.
    """
    if not bool(src_pad.any()):
        return None
    return ~src_pad[:, None, None, :]  # (B, 1, 1, S)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, dropout_p: float) -> Tensor:
    """F.scaled_dot_product_attention; on CPU, bf16/fp16 queries are attended in fp32.

    Under bf16 autocast on CPU both bf16 kernels are slow for short sentences: the flash
    kernel's backward (5x the fp32 one) and the MATH path's copies. Upcasting q, k and v to
    fp32 (k and v may already be fp32, e.g. a cache filled outside autocast), taking the flash
    kernel and casting the output back to q's dtype is 1.2x faster than MATH and 4.9x than bf16
    flash (forward + backward, 240 x 4 heads x 17 tokens, torch 2.13), and more accurate than
    attention in bf16.
    """
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                                 dropout_p=dropout_p, is_causal=causal)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over H heads with separate q/k/v/out matrices.

    The matrices stay separate parameters (each is pruned with its own threshold); at run time
    they are concatenated so that q/k/v (self-attention) or k/v (cross-attention) cost one GEMM
    (measured on transformer_cpu: within 1 % of three GEMMs for training and beam search, so
    kept for the single (N, 3D) layout it gives, which ``export.sparse_linear`` also uses).
    Inputs and outputs are packed rows (see ``Packing``).
    """

    def __init__(self, d_model: int, n_heads: int, attention_dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def project_qkv(self, x: Tensor) -> Tensor:
        """Rows (N, D) -> [q | k | v] (N, 3D) in one GEMM (a subclass may swap the matmul)."""
        return F.linear(x, torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))

    def project_kv(self, memory: Tensor) -> Tensor:
        """Rows (N, D) -> [k | v] (N, 2D) in one GEMM."""
        return F.linear(memory, torch.cat([self.k_proj.weight, self.v_proj.weight]))

    def _heads(self, padded: Tensor, parts: int) -> tuple[Tensor, ...]:
        """(B, L, parts * D) -> ``parts`` views (B, H, L, hd)."""
        batch, length, width = padded.shape
        head_dim = width // (parts * self.n_heads)
        if padded.stride(-1) != 1:  # e.g. a CSR projection's transposed output: SDPA's fused
            padded = padded.contiguous()  # kernel needs unit-stride head dims (else its math path, 3x slower)
        split = padded.view(batch, length, parts, self.n_heads, head_dim).unbind(2)  # parts x (B, L, H, hd)
        # unbind(2), not permute + unbind(0): the backward then stacks straight into (B, L, parts, D)
        return tuple(part.transpose(1, 2) for part in split)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
        """q (B, H, T, hd), k/v (B, H, S, hd), mask broadcastable to (B, H, T, S) -> (B, H, T, hd)."""
        return _sdpa(q, k, v, mask, causal, self.attention_dropout if self.training else 0.0)

    def self_attention(self, x: Tensor, packing: Packing, key_mask: Tensor | None = None,
                       causal: bool = False, cache: KVBuffer | None = None) -> Tensor:
        """Self-attention of rows x (N, D) -> output rows (N, D).

        ``key_mask`` (B, 1, 1, T) bool masks padded keys (encoder). ``causal`` lets position i
        see positions <= i (decoder). ``cache`` holds the keys/values of t earlier positions;
        the T new tokens continue after them and are appended to it.
        """
        q, k, v = self._heads(packing.unpack(self.project_qkv(x)), 3)  # each (B, H, T, hd)
        length = q.size(2)
        if cache is not None:
            cached = cache.length
            keys, values = cache.append(k, v)  # (B, H, t + T, hd)
            if cached > 0:  # else the new tokens attend among themselves, as without a cache
                k, v = keys, values
                if causal and length > 1:  # new tokens see all cached ones and their own prefix
                    key_mask = torch.ones(length, k.size(2), dtype=torch.bool, device=x.device).tril(
                        k.size(2) - length)  # (T, t + T)
                causal = False  # a single new token may see every cached key
        out = self._attend(q, k, v, key_mask, causal and length > 1)  # (B, H, T, hd)
        return self.out_proj(packing.pack_heads(out))

    def memory_kv(self, memory: Tensor, packing: Packing) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values of memory rows (N_src, D) -> two (B, H, S, hd)."""
        k, v = self._heads(packing.unpack(self.project_kv(memory)), 2)  # each (B, H, S, hd)
        return k, v

    def cross_attention(self, x: Tensor, packing: Packing, k: Tensor, v: Tensor,
                        key_mask: Tensor | None, group: int = 1) -> Tensor:
        """Attention of rows x (N, D) to memory keys/values k, v (B / group, H, S, hd) -> (N, D).

        Hypotheses j*group ... (j+1)*group - 1 all read memory row j; their queries are stacked
        as one block of group*T queries, exact because cross-attention has no causal order.
        """
        q = packing.unpack(self.q_proj(x))  # (B, T, D)
        batch, length, width = q.shape
        if group == 1:
            (q,) = self._heads(q, 1)  # (B, H, T, hd)
            return self.out_proj(packing.pack_heads(self._attend(q, k, v, key_mask, causal=False)))
        if packing.index is not None:
            raise ValueError("grouped cross-attention (group > 1) takes unpadded rows only")
        (q,) = self._heads(q.reshape(batch // group, group * length, width), 1)  # (B/G, H, G*T, hd)
        out = self._attend(q, k, v, key_mask, causal=False)  # (B/G, H, G*T, hd)
        return self.out_proj(out.transpose(1, 2).reshape(batch * length, width))  # (N, D), rows (hyp, t)


class FeedForward(nn.Module):
    """Position-wise ReLU feed-forward: fc2(dropout(relu(fc1(x))))."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float, dropout_broadcast: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.activation_dropout = activation_dropout
        self.dropout_broadcast = dropout_broadcast

    def forward(self, x: Tensor, packing: Packing) -> Tensor:
        """Rows (N, D) -> (N, D)."""
        # Not in-place: relu_ on linear's output would add a CopySlices copy to the backward.
        hidden = F.relu(self.fc1(x))  # (N, F)
        hidden = packing.dropout(hidden, self.activation_dropout, self.training, self.dropout_broadcast)
        return self.fc2(hidden)  # (N, D)


class _ResidualBlocks(nn.Module):
    """Residual wiring shared by encoder and decoder layers: pre-norm or post-norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.pre_norm = config.pre_norm
        self.dropout = config.dropout
        self.dropout_broadcast = config.dropout_broadcast

    def _residual(self, x: Tensor, packing: Packing, norm: nn.LayerNorm, sublayer, *args) -> Tensor:
        """x + dropout(sublayer(norm(x))) (pre-norm) or norm(x + dropout(sublayer(x))) (post-norm)."""
        out = sublayer(norm(x) if self.pre_norm else x, packing, *args)
        out = x + packing.dropout(out, self.dropout, self.training, self.dropout_broadcast)
        return out if self.pre_norm else norm(out)


class EncoderLayer(_ResidualBlocks):
    """Self-attention over the source, then the feed-forward block."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.self_attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout)
        self.self_attn_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.ffn = FeedForward(d, config.d_ff, config.activation_dropout, config.dropout_broadcast)
        self.ffn_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)

    def forward(self, x: Tensor, packing: Packing, key_mask: Tensor | None) -> Tensor:
        """Rows x (N, D), key_mask (B, 1, 1, S) bool or None -> (N, D)."""
        x = self._residual(x, packing, self.self_attn_norm, self.self_attn.self_attention, key_mask)
        return self._residual(x, packing, self.ffn_norm, self.ffn)


class DecoderLayer(_ResidualBlocks):
    """Causal self-attention, cross-attention to the encoder memory, then feed-forward."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.self_attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout)
        self.self_attn_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.cross_attn = MultiHeadAttention(d, config.n_heads, config.attention_dropout)
        self.cross_attn_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.ffn = FeedForward(d, config.d_ff, config.activation_dropout, config.dropout_broadcast)
        self.ffn_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)

    def forward(self, x: Tensor, packing: Packing, memory_k: Tensor, memory_v: Tensor,
                memory_mask: Tensor | None, group: int = 1,
                cache: KVBuffer | None = None) -> Tensor:
        """Rows x (N, D); memory k/v (B/group, H, S, hd) -> rows (N, D); ``cache`` grows by x's tokens."""
        x = self._residual(x, packing, self.self_attn_norm, self.self_attn.self_attention, None, True, cache)
        x = self._residual(x, packing, self.cross_attn_norm, self.cross_attn.cross_attention,
                           memory_k, memory_v, memory_mask, group)
        return self._residual(x, packing, self.ffn_norm, self.ffn)


class Encoder(nn.Module):
    """A stack of encoder layers (plus the final LayerNorm of pre-norm models)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS) if config.pre_norm else None

    def forward(self, x: Tensor, packing: Packing, key_mask: Tensor | None) -> Tensor:
        """Embedded source rows (N, D) -> memory rows (N, D)."""
        for layer in self.layers:
            x = layer(x, packing, key_mask)
        return self.norm(x) if self.norm is not None else x


class Decoder(nn.Module):
    """A stack of decoder layers (plus the final LayerNorm of pre-norm models).

    ``Transformer.decode`` drives the layers, since it owns the cache and the memory K/V.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS) if config.pre_norm else None


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
        memory = self.encoder(self._embed(src, packing), packing, _key_mask(src_pad))  # (N, D)
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
            memory_mask, group = _key_mask(enc.src_pad), 1
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
            cross_mask=_key_mask(enc.src_pad), group=1,
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
