"""The Transformer's building blocks: positions, feed-forward, encoder and decoder layers and stacks."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_slt.model.attention import MultiHeadAttention
from lightning_slt.model.config import TransformerConfig
from lightning_slt.model.kv_cache import KVBuffer
from lightning_slt.model.packing import Packing

LAYER_NORM_EPS = 1e-6  # tensor2tensor's layer_norm epsilon


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
