"""The Transformer, its presets and decoding (``TranslationModule`` lives in ``module.py``)."""

from lightning_slt.model.presets import PRESETS, get_preset, transformer_base, transformer_cpu
from lightning_slt.model.search import beam_search, beam_step, gnmt_length_penalty, greedy_search
from lightning_slt.model.transformer import DecoderCache, EncoderOut, Transformer, TransformerConfig

__all__ = [
    "PRESETS", "DecoderCache", "EncoderOut", "Transformer", "TransformerConfig",
    "beam_search", "beam_step", "get_preset", "gnmt_length_penalty", "greedy_search",
    "transformer_base", "transformer_cpu",
]
