"""Named model sizes: the documented sizes and parameter counts, the registry and its error, and
the architecture arguments a preset gives TranslationModule."""

import pytest
import torch

from lightning_slt.model.presets import PRESETS, get_preset, preset_arguments, transformer_base, transformer_cpu
from lightning_slt.model.transformer import Transformer


def test_presets_have_the_documented_sizes_and_parameter_counts():
    base, cpu = transformer_base(), transformer_cpu()
    assert (base.vocab_size, base.d_model, base.n_heads, base.encoder_layers, base.decoder_layers,
            base.d_ff, base.dropout, base.pre_norm) == (33000, 512, 8, 6, 6, 2048, 0.1, True)
    assert (base.attention_dropout, base.activation_dropout) == (0.1, 0.1)  # t2t v2
    assert (cpu.vocab_size, cpu.d_model, cpu.n_heads, cpu.encoder_layers, cpu.decoder_layers,
            cpu.d_ff) == (8000, 256, 4, 3, 3, 1024)
    with torch.device("meta"):  # shapes only: no 244 MB allocation
        counts = {name: sum(p.numel() for p in Transformer(build()).parameters())
                  for name, build in PRESETS.items()}
    assert counts == {"transformer_base": 60_999_680, "transformer_cpu": 7_569_408}  # as in the docstrings


def test_get_preset_returns_the_builder_and_lists_known_names_on_error():
    assert get_preset("transformer_cpu") is transformer_cpu
    assert get_preset("transformer_cpu")(vocab_size=123).vocab_size == 123
    with pytest.raises(ValueError, match="unknown model preset 'big'; known presets: transformer_base, transformer_cpu"):
        get_preset("big")


def test_preset_arguments_are_every_architecture_argument_of_the_preset():
    assert preset_arguments("transformer_cpu") == {
        "d_model": 256, "n_heads": 4, "encoder_layers": 3, "decoder_layers": 3, "d_ff": 1024, "dropout": 0.1,
        "attention_dropout": 0.0, "activation_dropout": 0.0, "pre_norm": True, "max_positions": 1024}
    base = preset_arguments("transformer_base")
    assert (base["d_model"], base["d_ff"], base["attention_dropout"], base["activation_dropout"]) == (512, 2048, 0.1, 0.1)
    assert "vocab_size" not in base  # the data's tokenizer sets it
    with pytest.raises(ValueError, match="unknown model preset 'transformer_big'"):
        preset_arguments("transformer_big")
