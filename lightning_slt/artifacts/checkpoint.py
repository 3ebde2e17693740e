"""A run's checkpoint as one typed value, and the writers of the parts we add to it.

Why one owner: the pruning callbacks, the rewind callback, the module, the exporters and the
runner all read or write parts of the same Lightning checkpoint dict. They meet here, so the
layout (``keys``) is written by :func:`pruning_state` / :func:`rewind_state` and read by
:func:`run_checkpoint` only, and a state of a newer format is refused in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from torch import Tensor

from . import keys


class Kind(str, Enum):
    """What a file is; a ``str`` so that it prints, compares and serialises as its value."""

    LIGHTNING_SLT = "lightning_slt"  # a Lightning checkpoint with our masks
    LIGHTNING = "lightning"  # a Lightning checkpoint without masks
    LIGHTNING_MODEL_PRUNING = "lightning_model_pruning"  # Lightning's ModelPruning (torch.prune inside)
    TICKET = keys.TICKET_KIND  # θT and its masks
    WINNING_TICKET = keys.WINNING_TICKET_KIND  # θk ⊙ m as ``snapshots[k]`` and m; no θT
    STATE_DICT = "state_dict"
    TORCH_PRUNE = "torch_prune"
    SAFETENSORS = "safetensors"
    OPENLTH_MASK = "openlth_mask"  # masks only

    __str__ = str.__str__
    __format__ = str.__format__


LIGHTNING_KINDS = (Kind.LIGHTNING, Kind.LIGHTNING_SLT, Kind.LIGHTNING_MODEL_PRUNING)
TICKET_KINDS = (Kind.TICKET, Kind.WINNING_TICKET)  # the files `lightning-slt export` writes


@dataclass
class RunCheckpoint:
    """What a file provides: weights, masks, θ_step snapshots by step, optimizer states, and more.

    Attributes:
        weights: the weights (θT of a run; θ_global_step of a Lightning checkpoint), or None
            for a mask-only file.
        masks: bool masks (True = kept) by tensor name, or None when the file stores none.
        snapshots: {k: θk} recorded by ``WeightRewind(step=k)``.
        optimizer_states: {k: {"optimizer", "lr_schedulers"}} recorded with θk.
        rewind_steps: every k a ``WeightRewind`` of the run was set to, recorded or not yet.
        tokenizer: the sentencepiece model bytes the run was trained with.
        hparams: the module's hyper-parameters; callbacks: the run's pruning callbacks;
        ticket: how its ticket was assembled (see ``callbacks.base``).
        global_step / epoch: of a Lightning checkpoint.
    """

    path: str
    kind: Kind
    weights: dict[str, Tensor] | None = None
    masks: dict[str, Tensor] | None = None
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    optimizer_states: dict[int, dict] = field(default_factory=dict)
    rewind_steps: list[int] = field(default_factory=list)
    tokenizer: bytes | None = None
    hparams: dict[str, Any] | None = None
    callbacks: list[dict] | None = None
    ticket: dict[str, Any] | None = None
    global_step: int | None = None
    epoch: int | None = None

    @property
    def step(self) -> int | None:
        """The step its ``weights`` are at (a Lightning checkpoint's ``global_step``)."""
        return self.global_step


def run_checkpoint(checkpoint: Mapping[str, Any], path: str = "the checkpoint") -> RunCheckpoint:
    """The typed view of a Lightning checkpoint dict (no tensor is copied).

    Raises:
        ValueError: its pruning state has a newer format than this version reads.
    """
    ours = pruning_state_of(checkpoint, path)
    masks = {name: mask.bool() for name, mask in (ours.get(keys.MASKS) or {}).items()} or None
    run = RunCheckpoint(
        str(path), Kind.LIGHTNING_SLT if masks else Kind.LIGHTNING,
        weights={k: v for k, v in (checkpoint.get(keys.STATE_DICT_KEY) or {}).items() if isinstance(v, Tensor)},
        masks=masks, hparams=checkpoint.get(keys.HPARAMS_KEY), callbacks=ours.get(keys.PRUNING_CALLBACKS),
        ticket=ours.get(keys.TICKET), global_step=_int_or_none(checkpoint.get(keys.GLOBAL_STEP_KEY)),
        epoch=_int_or_none(checkpoint.get(keys.EPOCH_KEY)),
    )
    tokenizer = checkpoint.get(keys.TOKENIZER_KEY)
    run.tokenizer = tokenizer.numpy().tobytes() if isinstance(tokenizer, Tensor) else None
    for step, state in sorted(_rewind_states(checkpoint).items()):
        run.rewind_steps.append(step)
        if state.get(keys.REWIND_SNAPSHOT):
            run.snapshots[step] = state[keys.REWIND_SNAPSHOT]
            if state.get(keys.REWIND_OPTIMIZER) is not None:
                run.optimizer_states[step] = {"optimizer": state[keys.REWIND_OPTIMIZER],
                                              "lr_schedulers": state.get(keys.REWIND_SCHEDULERS, [])}
    return run


def pruning_state_of(checkpoint: Mapping[str, Any], path: str = "the checkpoint") -> Mapping[str, Any]:
    """``checkpoint[STATE_KEY]`` ({} without one), refused when written by a newer lightning_slt."""
    ours = checkpoint.get(keys.STATE_KEY) or {}
    version = ours.get(keys.VERSION, keys.STATE_FORMAT_VERSION) if isinstance(ours, Mapping) else None
    if not isinstance(version, int) or version > keys.STATE_FORMAT_VERSION:
        raise ValueError(
            f"{path}: its pruning state ({keys.STATE_KEY!r}) has format version {version!r}, newer than the "
            f"{keys.STATE_FORMAT_VERSION} this lightning_slt reads; upgrade lightning_slt to read it "
            "(pip install -U lightning_slt)"
        )
    return ours


def pruning_state(masks: dict[str, Tensor], callbacks: list[dict], ticket: dict[str, Any] | None) -> dict[str, Any]:
    """``checkpoint[STATE_KEY]`` of a fit: its masks (CPU), pruning callbacks and ticket record."""
    state = {keys.VERSION: keys.STATE_FORMAT_VERSION, keys.MASKS: masks, keys.PRUNING_CALLBACKS: callbacks}
    if ticket is not None:
        state[keys.TICKET] = ticket
    return state


def rewind_state(step: int, snapshot: dict | None, optimizer: list | None, schedulers: list | None) -> dict[str, Any]:
    """The ``WeightRewind`` callback state, under ``checkpoint["callbacks"][rewind_state_key(step)]``."""
    return {keys.REWIND_STEP: step, keys.REWIND_SNAPSHOT: snapshot, keys.REWIND_OPTIMIZER: optimizer,
            keys.REWIND_SCHEDULERS: schedulers}


def _rewind_states(checkpoint: Mapping[str, Any]) -> dict[int, Mapping]:
    states = {}
    for key, state in (checkpoint.get(keys.CALLBACKS_KEY) or {}).items():
        step = keys.rewind_step_of(key)
        if step is not None and isinstance(state, Mapping):
            states[int(state.get(keys.REWIND_STEP, step))] = state
    return states


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe_call(described: Mapping[str, Any]) -> str:
    """``Class(arg=value, ...)`` of a recorded pruning callback (``{"class": ..., settings}``)."""
    args = ", ".join(f"{k}={v!r}" for k, v in described.items() if k != "class" and v is not None)
    return f"{described['class']}({args})"


def check_resume_keeps_masks(trainer: Any, checkpoint: Mapping[str, Any], pruning_in_fit: bool) -> None:
    """Refuse to resume a pruned run's checkpoint in a fit with no pruning callback
    (``pruning_in_fit`` False): nothing would hold its masks, and the run would silently continue
    dense. Called from a LightningModule's ``on_load_checkpoint``, which Lightning runs after
    ``setup`` and before the first step."""
    run = run_checkpoint(checkpoint, trainer.ckpt_path or "the checkpoint")
    masks = run.masks or {}
    pruned = sum(int((~m).sum()) for m in masks.values())
    if not pruned or pruning_in_fit or trainer.state.fn != "fit":
        return
    total = sum(m.numel() for m in masks.values())
    started = [describe_call(cb) for cb in run.callbacks or []]
    raise ValueError(
        f"checkpoint {trainer.ckpt_path or ''} holds the masks of a pruned run ({pruned / total:.1%} of {total} weights "
        f"in {len(masks)} tensors pruned), but this fit has no pruning callback, so it would continue dense. Resume "
        "with the pruning callbacks the run was started with"
        + (f": {', '.join(started)}" if started else " (its config.yaml)")
        + "; or, to train these weights further as a new run, load them (TranslationModule.load_from_checkpoint) "
        "and fit with ConvergedMask(source=<it>) so the masks are kept"
    )
