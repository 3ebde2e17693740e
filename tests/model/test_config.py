"""The architecture is written once: ``TransformerConfig`` drives TranslationModule's arguments,
the presets and ``conf/model/*.yaml`` (issue 12); these tests fail when one of them drifts;
and a config of bad sizes or ids is refused naming the value."""

from pathlib import Path

import pytest
import yaml

from lightning_slt.model.config import (
    ARCHITECTURE_ARGUMENTS,
    TransformerConfig,
    check_architecture_signature,
)
from lightning_slt.model.module import TranslationModule
from lightning_slt.model.presets import PRESETS, preset_arguments

from ._tiny import tiny_config

MODEL_CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def test_architecture_arguments_are_the_config_fields_a_run_sets():
    assert ARCHITECTURE_ARGUMENTS == ("d_model", "n_heads", "encoder_layers", "decoder_layers", "d_ff", "dropout",
                                      "attention_dropout", "activation_dropout", "pre_norm", "max_positions")


def test_module_builds_the_config_its_arguments_describe():
    module = TranslationModule(vocab_size=50, d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64)
    expected = TransformerConfig(vocab_size=50, d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64)
    assert module.model.config == expected


def test_a_signature_that_drifts_from_the_config_is_refused():
    check_architecture_signature(TranslationModule.__init__)  # the real one agrees

    def drifted(self, vocab_size: int, d_model: int = 256, n_heads: int = 8, encoder_layers: int = 6,
                decoder_layers: int = 6, d_ff: int = 2048, dropout: float = 0.1, attention_dropout: float = 0.0,
                activation_dropout: int = 0, pre_norm: bool = True) -> None: ...

    with pytest.raises(TypeError, match=r"d_model defaults to 256, the config to 512; .*"
                                        r"activation_dropout is typed <class 'int'>.*max_positions is missing"):
        check_architecture_signature(drifted)


def test_every_model_yaml_is_a_preset():
    assert sorted(path.stem for path in MODEL_CONF.glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_model_yaml_states_exactly_its_preset_architecture(name):
    model = yaml.safe_load((MODEL_CONF / f"{name}.yaml").read_text())["model"]
    stated = {key: model.get(key, "<missing>") for key in ARCHITECTURE_ARGUMENTS}
    assert stated == preset_arguments(name)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_from_preset_takes_the_preset_architecture(name):
    module = TranslationModule.from_preset(name, vocab_size=64, d_model=32, n_heads=2, d_ff=64, encoder_layers=1,
                                           decoder_layers=1)
    config = PRESETS[name](vocab_size=64)
    assert (module.hparams.dropout, module.hparams.attention_dropout, module.hparams.activation_dropout) == (
        config.dropout, config.attention_dropout, config.activation_dropout)


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(d_model=30, n_heads=4), "d_model must be divisible by n_heads, got d_model=30 and n_heads=4"),
    (dict(encoder_layers=0), "encoder_layers must be a positive int, got 0"),
    (dict(vocab_size=-5), "vocab_size must be a positive int, got -5"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    (dict(attention_dropout=-0.1), r"attention_dropout must be in \[0, 1\), got -0.1"),
    (dict(eos_id=40), r"eos_id must be in \[0, vocab_size=40\), got 40"),
    (dict(bos_id=0), "pad_id, bos_id and eos_id must differ, got 0, 0, 2"),
])
def test_config_rejects_bad_values_with_a_clear_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)
