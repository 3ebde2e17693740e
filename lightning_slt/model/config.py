"""``TransformerConfig``: the one place the architecture is written.

``TranslationModule``'s architecture arguments, the presets and ``conf/model/*.yaml`` are all
checked against these fields: the module's signature at import (``check_architecture_signature``),
the YAML by ``tests/model/test_config.py``. The signature itself stays written out because
jsonargparse (``--model.d_model``) and Lightning's ``save_hyperparameters`` read it.
"""

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

# Not a TranslationModule argument: the tokenizer fixes the special ids, and the dropout layout
# is the paper's (a research switch, not a setting a run's YAML should carry).
_NOT_A_MODULE_ARGUMENT = {"module_argument": False}


@dataclass
class TransformerConfig:
    """Sizes and regularisation of a ``Transformer``.

    Defaults are transformer_base's sizes; the paper's preset (``presets.transformer_base``)
    adds t2t v2's attention and ReLU dropout on top.
    """

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
    pad_id: int = field(default=0, metadata=_NOT_A_MODULE_ARGUMENT)
    bos_id: int = field(default=1, metadata=_NOT_A_MODULE_ARGUMENT)
    eos_id: int = field(default=2, metadata=_NOT_A_MODULE_ARGUMENT)
    # Sublayer and ReLU dropout draw one mask per sentence and channel, shared by its positions
    # (t2t TPU hparams, which the paper used); T times fewer random numbers, most of dropout's
    # CPU cost. False: a fresh mask entry per position (Vaswani). Embedding dropout is always
    # elementwise, as in t2t.
    dropout_broadcast: bool = field(default=True, metadata=_NOT_A_MODULE_ARGUMENT)

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


# The architecture a checkpoint fixes: TranslationModule arguments that are TransformerConfig
# fields, vocab_size aside (it comes from the data and is checked on its own).
ARCHITECTURE_ARGUMENTS: tuple[str, ...] = tuple(
    f.name for f in fields(TransformerConfig)
    if f.name != "vocab_size" and f.metadata.get("module_argument", True)
)


def architecture_arguments(config: TransformerConfig) -> dict[str, Any]:
    """``{argument: value}`` of the architecture arguments, as ``TranslationModule`` takes them."""
    return {name: getattr(config, name) for name in ARCHITECTURE_ARGUMENTS}


def config_from_arguments(vocab_size: int, arguments: Mapping[str, Any]) -> TransformerConfig:
    """The ``TransformerConfig`` a module's arguments (or a checkpoint's hyper_parameters) describe."""
    return TransformerConfig(vocab_size=vocab_size, **{name: arguments[name] for name in ARCHITECTURE_ARGUMENTS})


def check_architecture_signature(init: Callable[..., None]) -> None:
    """Refuse a constructor whose architecture arguments drift from ``TransformerConfig``.

    Raises:
        TypeError: an architecture field is missing from the signature, or has another default
            or type there (a new field must be added to ``TranslationModule.__init__`` and its
            ``Args:``, or marked ``_NOT_A_MODULE_ARGUMENT``).
    """
    parameters = inspect.signature(init).parameters
    hints = typing.get_type_hints(init)
    config_hints = typing.get_type_hints(TransformerConfig)
    problems = []
    for config_field in fields(TransformerConfig):
        name = config_field.name
        if name != "vocab_size" and name not in ARCHITECTURE_ARGUMENTS:
            continue
        if name not in parameters:
            problems.append(f"{name} is missing")
            continue
        default = inspect.Parameter.empty if config_field.default is MISSING else config_field.default
        if parameters[name].default != default:
            problems.append(f"{name} defaults to {parameters[name].default!r}, the config to {default!r}")
        if hints.get(name) != config_hints[name]:
            problems.append(f"{name} is typed {hints.get(name)}, the config {config_hints[name]}")
    if problems:
        raise TypeError(f"{init.__qualname__} disagrees with TransformerConfig: " + "; ".join(problems))
