"""Multi-head attention over packed rows, through ``F.scaled_dot_product_attention``."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_slt.model.kv_cache import KVBuffer
from lightning_slt.model.packing import Packing


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, dropout_p: float) -> Tensor:
    """F.scaled_dot_product_attention, except for bf16/fp16 queries on CPU (see below).

    Under bf16 autocast on CPU both bf16 SDPA kernels are slow for short sentences: the flash
    kernel's backward (5x the fp32 one) and the MATH path's copies. The plain composition in
    bf16 (``_bf16_attention``) is the fastest replacement on both CPU kinds measured
    (transformer_cpu training step, forward + backward, torch 2.13, 2 threads, paired steps):
    1.25x faster attention and a 1.05x step against q, k, v upcast through the fp32 flash kernel
    on AVX512-BF16 without AMX; a 1.054-1.062x step against the same on a Xeon with AMX.
    """
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        return _bf16_attention(q, k, v, mask, causal, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)


def _bf16_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, dropout_p: float) -> Tensor:
    """softmax(q k^T / sqrt(hd)) v with both matmuls in q's dtype, the softmax in fp32.

    The semantics of ``F.scaled_dot_product_attention`` (bool ``mask``: True = may attend;
    ``causal``: query i sees keys <= i, aligned at the top left), as autocast would compute its
    MATH path, without that path's extra copies. The scores are rounded to bf16 before the
    fp32 softmax, as in any bf16 matmul.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(q.size(-1) ** -0.5)  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if causal:
        future = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).triu(1)  # (T, S)
        scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return torch.matmul(weights, v)  # (B, H, T, hd)


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
