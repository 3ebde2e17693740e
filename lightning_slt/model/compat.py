"""Whether a tokenizer or a checkpoint fits a module, refused with what differs and the fix.

Checked before anything is copied or trained, so a wrong ``ckpt_path`` or ``spm_model`` fails
with a sentence instead of a ``size mismatch`` list or, worse, ids that mean other pieces.
"""

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from lightning_slt.artifacts.keys import TOKENIZER_KEY
from lightning_slt.data.tokenizer import Tokenizer
from lightning_slt.model.config import ARCHITECTURE_ARGUMENTS, TransformerConfig


def require_tokenizer(tokenizer: Tokenizer | None) -> Tokenizer:
    """``tokenizer``, or a RuntimeError that says how to attach one."""
    if tokenizer is None:
        raise RuntimeError(
            "no tokenizer attached: run with a TranslationDataModule, load a checkpoint, or "
            "call set_tokenizer(datamodule.tokenizer) first"
        )
    return tokenizer


def check_tokenizer_fits(config: TransformerConfig, tokenizer: Tokenizer, attached: Tokenizer | None) -> None:
    """Refuse a tokenizer whose vocabulary or special ids differ from the model's, or that differs
    from the one the module already holds (a checkpoint trained with another model).

    Raises:
        ValueError: naming the sizes, the ids or the conflict.
    """
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"tokenizer has vocab_size={tokenizer.vocab_size} but the model has "
            f"vocab_size={config.vocab_size}; build both from the same sentencepiece model"
        )
    ids = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    if ids != (config.pad_id, config.bos_id, config.eos_id):
        raise ValueError(f"tokenizer (pad, bos, eos) ids {ids} differ from the model's "
                         f"{(config.pad_id, config.bos_id, config.eos_id)}")
    if attached is not None and attached.model_proto != tokenizer.model_proto:
        raise ValueError(
            "the module already holds a different sentencepiece model (e.g. from its "
            "checkpoint); train and evaluate with the same spm_model / data settings"
        )


def check_checkpoint_fits(checkpoint: Mapping[str, Any], hparams: Mapping[str, Any], mine: Mapping[str, Tensor],
                          tokenizer: Tokenizer | None, where: str) -> None:
    """Refuse a checkpoint a module with ``hparams`` and state dict ``mine`` cannot continue from.

    Args:
        checkpoint: a loaded Lightning checkpoint of a TranslationModule.
        hparams: the module's hyper-parameters (``vocab_size`` and the architecture).
        mine: the module's ``state_dict()``.
        tokenizer: the tokenizer the data will be encoded with, if known.
        where: how to name the checkpoint in messages (its path).

    Raises:
        ValueError: another vocabulary size or sentencepiece model, or tensors of other shapes.
    """
    saved_hp = checkpoint.get("hyper_parameters") or {}
    state = checkpoint.get("state_dict") or {}
    embed = state.get("model.embed.weight")
    saved_vocab = saved_hp.get("vocab_size", embed.shape[0] if isinstance(embed, Tensor) else None)
    if saved_vocab is not None and saved_vocab != hparams["vocab_size"]:
        raise ValueError(
            f"{where} was trained with a vocabulary of {saved_vocab} sentencepiece pieces, but this model "
            f"has {hparams['vocab_size']} (the size of the data's tokenizer{_spm_file(tokenizer)}): encode the "
            "data with the sentencepiece model the checkpoint was trained with (data.spm_model, or the same "
            "data.vocab_size and training data)"
        )
    saved_proto = checkpoint.get(TOKENIZER_KEY)
    if tokenizer is not None and isinstance(saved_proto, Tensor):
        tokenizer.check_trained_with(saved_proto.numpy().tobytes(), where)
    if "state_dict" not in checkpoint:  # a distributed checkpoint's metadata: DCP loads (and checks) the shards itself
        return
    wrong = [f"{name} {tuple(value.shape)} there, {tuple(mine[name].shape)} here" for name, value in state.items()
             if name in mine and isinstance(value, Tensor) and value.shape != mine[name].shape]
    missing = [name for name in mine if name not in state]
    if wrong or missing:
        differ = [f"{k}={saved_hp[k]} (here {hparams[k]})" for k in ARCHITECTURE_ARGUMENTS
                  if k in saved_hp and saved_hp[k] != hparams[k]]
        raise ValueError(
            f"{where} holds a model of other shapes: " + "; ".join(wrong[:3] or [f"no {missing[:3]}"])
            + (f" (its settings: {', '.join(differ)})" if differ else "")
            + ". Build the model with the checkpoint's settings (its hyper_parameters) or start a new run"
        )


def _spm_file(tokenizer: Tokenizer | None) -> str:
    """`` <path>`` of the sentencepiece model file a tokenizer came from (given or cached), else ``""``."""
    path = getattr(tokenizer, "path", None)
    return f" {path}" if path else ""
