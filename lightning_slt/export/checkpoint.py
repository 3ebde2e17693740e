"""From a TranslationModule checkpoint to a ticket file and back to a TranslationModule.

Why separate from ``ticket.py``: the file format knows nothing of Lightning or of our model;
this module maps a Lightning checkpoint of ``TranslationModule`` onto it (read as a
``RunCheckpoint``: weights, hparams, the sentencepiece model, the masks the pruning callbacks
stored) and rebuilds the module from a ticket.
"""

import inspect
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lightning_slt import __version__
from lightning_slt.artifacts import keys, read_checkpoint, run_checkpoint
from lightning_slt.artifacts.keys import TICKET_KIND, WINNING_TICKET_KIND
from lightning_slt.artifacts.ticket import Ticket, TicketError, read_ticket, storage_key, write_ticket
from lightning_slt.pruning import masks_from_zeros
from lightning_slt.pruning.stats import sparsity_report

if TYPE_CHECKING:
    from lightning_slt.model.module import TranslationModule

MODULE_CLASS = "lightning_slt.model.module.TranslationModule"


def pruned_masks_from_zeros(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """``pruning.masks_from_zeros`` of the tensors that have a zero (a ticket stores no all-kept mask)."""
    return {name: mask for name, mask in masks_from_zeros(state_dict).items() if not bool(mask.all())}


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    out_path: str | os.PathLike,
    values_dtype: str = "float32",
    masks: dict[str, Tensor] | None = None,
    embed_tokenizer: bool = True,
) -> dict[str, int]:
    """Write the ticket of a TranslationModule checkpoint; returns its sizes (see ``Ticket``).

    Masks, first found wins: the `masks` argument, the masks the pruning callbacks stored in
    the checkpoint, else the exact zeros of >= 2-dim tensors (``pruned_masks_from_zeros``). Mask
    keys are the checkpoint's state_dict names (``model.encoder...``). Pruned entries are
    zeroed before writing (pruning keeps them zero anyway). The header's ``extra`` says
    ``kind: "ticket"`` (the converged weights θT; see ``export_winning_ticket`` for θk ⊙ m).

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the file is not a TranslationModule checkpoint (no state_dict or no
            hyper_parameters), or a mask does not fit its tensor.
    """
    checkpoint = read_module_checkpoint(ckpt_path)
    state_dict = checkpoint_tensors(checkpoint)
    masks, masks_from = checkpoint_masks(checkpoint, state_dict, masks)
    extra = {keys.EXTRA_KIND: TICKET_KIND, "masks_from": masks_from}
    return write_module_ticket(out_path, ckpt_path, checkpoint, zero_pruned(state_dict, masks), masks, extra,
                               values_dtype, embed_tokenizer)


def read_module_checkpoint(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict, on CPU, after checking it is a Lightning checkpoint of TranslationModule.

    Raises:
        FileNotFoundError: no such checkpoint, or the path is a folder, a FIFO, a device, a
            symbolic link that leads nowhere (said as such).
        ValueError: no ``state_dict`` or no ``hyper_parameters`` in it, or hyper-parameters that
            are not TranslationModule's arguments (another LightningModule's checkpoint).
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.exists() and not ckpt_path.is_symlink():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    checkpoint = read_checkpoint(ckpt_path)  # weights only: a pickled payload never runs; a folder, FIFO... said
    if not isinstance(checkpoint, dict) or keys.STATE_DICT_KEY not in checkpoint or keys.HPARAMS_KEY not in checkpoint:
        raise ValueError(
            f"{ckpt_path} is not a Lightning checkpoint of TranslationModule (needs 'state_dict' and "
            "'hyper_parameters'); export the checkpoint written by `lightning-slt fit`"
        )
    _check_written_by_translation_module(ckpt_path, checkpoint[keys.HPARAMS_KEY])
    return checkpoint


def _check_written_by_translation_module(ckpt_path: Path, hparams: Any) -> None:
    """A ticket is rebuilt as ``TranslationModule(**hparams)``; another module's checkpoint would
    be exported with exit 0 and then fail in ``translate`` with a TypeError, so say what it is."""
    if not isinstance(hparams, dict):
        raise ValueError(f"{ckpt_path} has hyper_parameters of type {type(hparams).__name__}, expected a dict of "
                         "TranslationModule arguments; export the checkpoint written by `lightning-slt fit`")
    from lightning_slt.model.module import TranslationModule

    arguments = set(inspect.signature(TranslationModule.__init__).parameters) - {"self"}
    foreign = sorted(str(k) for k in hparams if not str(k).startswith("_") and k not in arguments)
    if foreign:  # "_"-keys are LightningCLI's own (_class_path, _instantiator), in our checkpoints too
        raise ValueError(
            f"{ckpt_path} was written by another LightningModule: its hyper-parameters {foreign[:5]} are not "
            "TranslationModule arguments. Export and translate take a checkpoint of "
            "`lightning-slt fit`: tickets hold lightning_slt's TranslationModule (rebuilt from these hyper-parameters). "
            "For a module of your own, the run's best.ckpt is the model: load it with YourModule.load_from_checkpoint"
        )


def checkpoint_tensors(checkpoint: dict[str, Any]) -> dict[str, Tensor]:
    """The tensors of the checkpoint's ``state_dict`` (the converged weights θT)."""
    return run_checkpoint(checkpoint).weights or {}


def checkpoint_masks(
    checkpoint: dict[str, Any], state_dict: dict[str, Tensor], masks: dict[str, Tensor] | None = None
) -> tuple[dict[str, Tensor], str]:
    """(masks, where from): `masks` if given ("argument"), else the ones the pruning callbacks
    stored ("checkpoint"), else the exact zeros of `state_dict` ("zeros", ``pruned_masks_from_zeros``)."""
    if masks is not None:
        return masks, "argument"
    stored = run_checkpoint(checkpoint).masks
    if stored:
        return stored, "checkpoint"
    return pruned_masks_from_zeros(state_dict), "zeros"


def zero_pruned(state_dict: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """A copy of `state_dict` whose pruned entries are +0.0; kept ones untouched, -0.0 included.

    Tensors that share storage (tied weights) are masked once and stay shared, so the ticket
    stores them once. A mask that does not fit its tensor is left for ``write_ticket`` to name.
    """
    out, done = dict(state_dict), {}
    for name, mask in masks.items():
        tensor = state_dict.get(name)
        if tensor is None or mask.shape != tensor.shape:
            continue
        key = storage_key(tensor) or name  # empty tensors have no storage identity
        if key not in done:
            done[key] = torch.where(mask, tensor, torch.zeros((), dtype=tensor.dtype))
        out[name] = done[key]
    for name, tensor in state_dict.items():  # a tied twin without a mask of its own follows its twin
        key = storage_key(tensor)
        if name not in masks and key is not None and key in done:
            out[name] = done[key]
    return out


def write_module_ticket(
    out_path: str | os.PathLike,
    ckpt_path: str | os.PathLike,
    checkpoint: dict[str, Any],
    state_dict: dict[str, Tensor],
    masks: dict[str, Tensor],
    extra: dict[str, Any],
    values_dtype: str = "float32",
    embed_tokenizer: bool = True,
) -> dict[str, int]:
    """Write `state_dict` and `masks` with the checkpoint's hparams and tokenizer; returns the sizes.

    ``extra`` gains what every ticket of a checkpoint records: the checkpoint's file name,
    global step and epoch, the masks' global sparsity and this package's version.
    """
    run = run_checkpoint(checkpoint, os.fspath(ckpt_path))
    model_config = {"class": MODULE_CLASS, "hparams": _plain(_constructor_hparams(run.hparams or {}))}
    extra = {
        "source_checkpoint": Path(ckpt_path).name,
        "global_step": run.global_step,
        "epoch": run.epoch,
        **extra,
        "sparsity": sparsity_report(masks)["global"],
        "lightning_slt_version": __version__,
    }
    return write_ticket(out_path, state_dict, masks, model_config, run.tokenizer, values_dtype, extra,
                        embed_tokenizer=embed_tokenizer)


def load_ticket(path: str | os.PathLike, use: str = "the module holds the weights of that step") -> "TranslationModule":
    """Rebuild the TranslationModule of a ticket (eval mode, on CPU, tokenizer attached if embedded).

    With fp32 values the weights equal the exported checkpoint's bit for bit (pruned entries
    are +0.0). A winning ticket (θk ⊙ m, the start of a pruning round) loads with a warning
    that it is not a trained model; `use` says there what the caller makes of its weights.

    Raises:
        TicketError: unreadable ticket, or one that does not hold a TranslationModule.
    """
    from lightning_slt.model.module import TranslationModule

    ticket = read_ticket(path)
    module = TranslationModule(**_module_hparams(path, ticket))
    _warn_if_winning_ticket(path, _rewind_step_of(ticket.extra), use)
    missing, unexpected = module.load_state_dict(ticket.state_dict, strict=False)
    if missing or unexpected:
        raise TicketError(
            f"{path}: ticket weights do not fit TranslationModule: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if ticket.tokenizer_proto is not None:
        from lightning_slt.data.tokenizer import Tokenizer

        module.set_tokenizer(Tokenizer.from_proto(ticket.tokenizer_proto))
    return module.eval()


def _module_hparams(path: str | os.PathLike, ticket: Ticket) -> dict[str, Any]:
    config = ticket.model_config
    if config.get("class") != MODULE_CLASS or not isinstance(config.get("hparams"), dict):
        raise TicketError(
            f"{path}: ticket holds model_config for {config.get('class')!r}, not {MODULE_CLASS}; "
            "read it with read_ticket() instead"
        )
    hparams = _constructor_hparams(config["hparams"])
    if isinstance(hparams.get("adam_betas"), list):
        hparams["adam_betas"] = tuple(hparams["adam_betas"])
    return hparams


def _constructor_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """hparams without the keys LightningCLI adds for itself (``_instantiator``, ``_class_path``):
    they are not constructor arguments. Also read from tickets written before they were dropped."""
    return {key: value for key, value in hparams.items() if not key.startswith("_")}


def _plain(value: Any) -> Any:
    """hparams as JSON types (tuples -> lists; paths -> str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _rewind_step_of(extra: Any) -> int | None:
    """k of a winning ticket's header ``extra`` (-1 without a valid step); None for any other ticket."""
    if not isinstance(extra, dict) or extra.get(keys.EXTRA_KIND) != WINNING_TICKET_KIND:
        return None
    step = extra.get(keys.EXTRA_REWIND_STEP)
    return step if isinstance(step, int) and not isinstance(step, bool) else -1


def _warn_if_winning_ticket(path: str | os.PathLike, step: int | None, use: str) -> None:
    """Warn that the ticket at `path` is a winning ticket (rewind step `step`), the start of a
    round rather than a trained model, when it is one; `use` says what the caller makes of it."""
    if step is None:
        return
    theta = f"θ{step}" if step >= 0 else "θk"
    warnings.warn(
        f"{path} is a winning ticket ({theta} ⊙ m: its run's weights at step {step if step >= 0 else 'k'} under the "
        f"run's mask), the start of the next pruning round, not a trained model: {use}. To use the trained model, "
        "export the run's checkpoint without --winning-ticket (`lightning-slt export <checkpoint> --out "
        "model.ticket`) and give that ticket",
        UserWarning, stacklevel=3,
    )
