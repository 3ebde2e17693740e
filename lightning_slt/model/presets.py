"""Named model sizes as typed builder functions (STYLE.md §14), one dict maps names to them.

A preset is a ``TransformerConfig`` that states only what differs from the dataclass defaults,
so a size is written once; ``conf/model/<preset>.yaml`` must agree with it (a test checks).
"""

from collections.abc import Callable
from typing import Any

from lightning_slt.model.config import TransformerConfig, architecture_arguments


def transformer_base(vocab_size: int = 33000) -> TransformerConfig:
    """The paper's model: tensor2tensor ``transformer_base`` v2/v3 (Brix et al. 2020, footnote 1).

    6 + 6 layers, d_model 512, 8 heads, FFN 2048, pre-norm, dropout 0.1 on sublayer outputs,
    attention weights and ReLU outputs (t2t v2's layer_prepostprocess/attention/relu_dropout).
    With the paper's 33k shared word-piece vocabulary: 60,999,680 parameters
    (embedding 16,896,000 + encoder 18,903,040 + decoder 25,200,640), the paper's "60M".
    """
    return TransformerConfig(vocab_size=vocab_size, attention_dropout=0.1, activation_dropout=0.1)


def transformer_cpu(vocab_size: int = 8000) -> TransformerConfig:
    """A small Transformer sized to train on Multi30k with 2 CPU cores.

    3 + 3 layers, d_model 256, 4 heads, FFN 1024, pre-norm, dropout 0.1. Why these numbers:
    Multi30k has 29k short sentences (~13 words), for which 3-layer models of width 256 are the
    usual size in the literature; base's ratios are kept (FFN = 4 * d_model, head width 64), so
    every weight matrix has the shape family of the paper's model and per-matrix pruning behaves
    alike; attention and ReLU dropout stay 0 so that SDPA keeps its fused CPU kernel, and
    dropout 0.1 on sublayer outputs regularises next to label smoothing. With an 8k shared
    sentencepiece vocabulary: 7,569,408 parameters (embedding 2,048,000 + encoder 2,366,720 +
    decoder 3,154,688), about 45 MFLOP per source + target token pair in a training step. On
    the 2-core AVX-512 machines a 64-sentence step takes ~0.3-0.5 s in fp32 (~40 % less with
    bf16 autocast), so a Multi30k epoch takes a few minutes.
    """
    return TransformerConfig(vocab_size=vocab_size, d_model=256, n_heads=4, encoder_layers=3, decoder_layers=3,
                             d_ff=1024)


PRESETS: dict[str, Callable[..., TransformerConfig]] = {
    "transformer_base": transformer_base,
    "transformer_cpu": transformer_cpu,
}


def get_preset(name: str) -> Callable[..., TransformerConfig]:
    """The builder registered as ``name``; call it with ``vocab_size=...``."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def preset_arguments(name: str) -> dict[str, Any]:
    """The architecture arguments of ``TranslationModule`` that preset ``name`` sets (all of them)."""
    return architecture_arguments(get_preset(name)())
