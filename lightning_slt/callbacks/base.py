"""How the pruning callbacks of one fit build a ticket together: one session, handed to each.

Several callbacks act on the same masks (``ConvergedMask`` sets them, ``GradualMagnitudePruning``
tightens them, ``SignOnlyReinit`` reads them). At ``setup`` of a fit the pruning callbacks in
``trainer.callbacks`` are gathered into one :class:`PruningSession`, handed to each of them
(``callback.session``). It owns what they share: the live masks, the sources read from disk
(each file once per fit), the checkpoint record, and the assembly of a fresh fit's ticket at
``on_train_start`` in the order of :class:`Role` (weights, re-init, mask, the schedule's first
prune, values), then the pruned entries are zeroed. The session does each of these once, so
whichever callback Lightning calls first triggers it and the order of the list never matters.
On resume nothing is assembled: the restored weights and masks win, and the pruning callbacks
must be built with the arguments the run was started with (recorded in every checkpoint).

Why ``on_train_start``: Lightning calls ``setup``, restores callbacks and weights, calls
``on_fit_start``, then restores the optimizer; only then is everything in place (and under FSDP2
the parameters exist in their sharded form only after ``configure_model``).

Decision: a session created at ``setup`` and handed to each callback, because users configure
the strategies as separate entries of ``trainer.callbacks`` (every YAML under ``conf/``, every
run's ``config.yaml``, ``--config base.yaml --config round.yaml`` adding a round to a dense run).
Rejected: one composing ``Ticket(weights=..., mask=..., schedule=..., values=...)`` callback: its
signature would show the order, but it needs a new config shape (breaking those files) or a hidden
step wrapping the listed callbacks into it. Replaced: a *leader* callback keeping the session as
an attribute of the Trainer and ordering the assembly by integer phases.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from lightning_slt._lightning import Callback, call_configure_model, pl, rank_zero_info
from lightning_slt.data.tokenizer import Tokenizer
from lightning_slt._runtime import destroy_gloo_group_at_exit
from lightning_slt.artifacts import RunCheckpoint, keys, load_source
from lightning_slt.artifacts.checkpoint import describe_call, pruning_state, run_checkpoint
from lightning_slt.pruning import ParameterMasks, kept_zeros, prunable_parameters


class Role(Enum):
    """What a pruning callback contributes to a fresh fit's ticket; assembled in this order."""

    WEIGHTS = "weights"  # WeightRewind(source=...): every parameter := θk of an earlier run
    REINIT = "reinit"  # RandomReinit: a fresh draw of the model's own initialiser
    MASK = "mask"  # ConvergedMask, RandomMask: the ticket's mask
    SCHEDULE = "schedule"  # GradualMagnitudePruning: its prune at the first step
    VALUES = "values"  # SignOnlyReinit: a transform of the kept values


class PruningCallback(Callback):
    """Base class: subclasses set ``role`` and implement :meth:`assemble` and their own hooks.

    The Lightning hooks that build, save and restore the ticket are implemented here and
    delegate to the session; a subclass adds hooks of its own, never overrides these.
    """

    role: Role
    _session: PruningSession | None = None

    @property
    def session(self) -> PruningSession:
        """The session of the current (or last) fit this callback took part in."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} is used outside trainer.fit: its pruning session is "
                               "created at setup of a fit")
        return self._session

    @property
    def sets_weights(self) -> bool:
        """True when this callback replaces the ticket's weights at assembly (one such per fit)."""
        return self.role is Role.WEIGHTS

    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        """Contribute to a fresh fit's ticket (not called on resume)."""

    def settings(self) -> dict[str, Any]:
        """The arguments this callback was built with (recorded in every checkpoint; compared on resume)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        values = {name: getattr(self, name) for name in names if hasattr(self, name)}
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}

    @staticmethod
    def _select(pl_module: pl.LightningModule, include: Sequence[str] | None, exclude: Sequence[str] | None):
        return prunable_parameters(pl_module, include=include, exclude=exclude)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_gloo_group_at_exit()  # CPU DDP ranks: a clean exit (see lightning_slt._runtime)
        if stage == "fit" and next(pl_module.parameters(), None) is None:
            # A module that builds its layers in configure_model (a Hugging Face model sized by the
            # data module, a large model): build them now, as fit would next (Lightning asks the hook
            # to be idempotent), so that sources are read and checked before any training.
            call_configure_model(trainer)
        if stage == "fit" and not (self._session is not None and self._session.is_open_for(trainer)):
            PruningSession.open(trainer)

    @override
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._session is not None and self._session.is_open_for(trainer):  # a fit's resume (not validate/test)
            self._session.restore(trainer, checkpoint)

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._session is not None:
            self._session.save(checkpoint)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.session.start(trainer, pl_module)

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.session.mask_sharded_gradients(trainer.global_step)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self._session is not None:
            self._session.close()


def renamed_argument(cls: str, new: str, value: Any, old: str, old_value: Any) -> Any:
    """The value of argument ``new``, also accepted under its old name ``old`` (with a FutureWarning)."""
    if old_value is None:
        return value
    if value is not None:
        raise ValueError(f"{cls}: pass the earlier run's file once, as {new}= ({old}= is its old name); got both "
                         f"{new}={value!r} and {old}={old_value!r}")
    warnings.warn(f"{cls}({old}=...) is deprecated and will be removed; use {cls}({new}=...): every callback names the "
                  f"earlier run's file {new}", FutureWarning, stacklevel=3)
    return old_value


def describe_callback(callback: PruningCallback) -> dict[str, Any]:
    """``{"class": ..., **settings}`` of a pruning callback, as recorded in checkpoints."""
    return {"class": type(callback).__name__, **callback.settings()}


class PruningSession:
    """What the pruning callbacks of one fit share.

    Attributes:
        callbacks: the fit's pruning callbacks, in list order.
        restored: True when this fit resumed from a checkpoint (no ticket assembly).
        previous_masks: the mask of the run this ticket came from (for overlap metrics).
        reference: θk this ticket was rewound to (for sign-agreement metrics), on CPU.
        ticket: how the ticket was assembled (callbacks, kept entries, kept entries that start
            at exactly 0), saved in every checkpoint under ``lightning_slt/ticket``.
    """

    def __init__(self, trainer: pl.Trainer, callbacks: list[PruningCallback]) -> None:
        self.callbacks = callbacks
        self.restored = False
        self.previous_masks: dict[str, Tensor] | None = None
        self.reference: dict[str, Tensor] | None = None
        self.ticket: dict[str, Any] | None = None
        self._trainer = trainer
        self._masks: ParameterMasks | None = None
        self._restored_masks: dict[str, Tensor] = {}
        self._sources: dict[str, RunCheckpoint] = {}
        self._attached = False
        self._gradients_masked_at: int | None = None

    @classmethod
    def open(cls, trainer: pl.Trainer) -> PruningSession:
        """A new session over the trainer's pruning callbacks, handed to each of them."""
        callbacks = [cb for cb in trainer.callbacks if isinstance(cb, PruningCallback)]
        _check_one_source_each(callbacks)
        session = cls(trainer, callbacks)
        for callback in callbacks:
            callback._session = session
        return session

    def is_open_for(self, trainer: pl.Trainer) -> bool:
        """True while this session serves a fit of ``trainer`` that has not started training yet."""
        return self._trainer is trainer and self._masks is None

    @property
    def started(self) -> bool:
        """True once the masks exist (from ``on_train_start`` of the fit on)."""
        return self._masks is not None

    @property
    def masks(self) -> ParameterMasks:
        """The live masks over all named parameters, from ``on_train_start`` on."""
        if self._masks is None:
            raise RuntimeError("the pruning session's masks exist from on_train_start on (after setup, the "
                               "checkpoint restore and the optimizer state)")
        return self._masks

    def with_role(self, role: Role) -> list[PruningCallback]:
        return [cb for cb in self.callbacks if cb.role is role]

    @property
    def mask_source(self) -> PruningCallback | None:
        """The callback that sets the ticket's mask (``ConvergedMask`` or ``RandomMask``), if any."""
        found = self.with_role(Role.MASK)
        return found[0] if found else None

    def read_source(self, path: str | os.PathLike) -> RunCheckpoint:
        """An earlier run's file, read once per fit however many callbacks use it (kept until training starts)."""
        key = os.path.realpath(path)
        if key not in self._sources:
            source = load_source(path)
            check_vocabulary(self._trainer, source, f"pruning source {path}")
            self._sources[key] = source
        return self._sources[key]

    def restore(self, trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
        if self.restored:
            return
        self.restored = True
        saved = run_checkpoint(checkpoint, trainer.ckpt_path or "the checkpoint")
        if saved.callbacks is None and not saved.masks:
            _check_nothing_to_assemble(self.callbacks, trainer.ckpt_path)
        _check_same_callbacks(saved.callbacks, [describe_callback(cb) for cb in self.callbacks], trainer.ckpt_path)
        self._restored_masks = saved.masks or {}
        self.ticket = saved.ticket

    def save(self, checkpoint: dict[str, Any]) -> None:
        if self._masks is None or keys.STATE_KEY in checkpoint:
            return
        checkpoint[keys.STATE_KEY] = pruning_state(
            self._masks.state_dict(), [describe_callback(cb) for cb in self.callbacks], self.ticket)

    def start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Build (fresh fit) or restore (resume) the masks and keep them on the optimizers; once per fit."""
        if self._attached:
            return
        self._masks = ParameterMasks(dict(pl_module.named_parameters()))
        self._sources.clear()  # every callback has taken what it needs from them at setup
        if self.restored:
            self._masks.load_state_dict(self._restored_masks)
            self._masks.apply_()
            self._restored_masks = {}
        else:
            self.assemble(trainer, pl_module)
        for optimizer in trainer.optimizers:
            self._masks.attach(optimizer)
        self._attached = True

    @torch.no_grad()
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A fresh fit's ticket: weights, then mask, then the schedule's first prune, then values."""
        ordered = [cb for role in Role for cb in self.with_role(role)]
        for callback in ordered:
            callback.assemble(trainer, pl_module, self)
        self.masks.apply_()
        kept, zero = kept_zeros(self.masks.params, self.masks.masks)
        names = [type(cb).__name__ for cb in ordered]
        self.ticket = {"assembled_by": names, "kept": kept, "kept_zero": zero}
        rank_zero_info(f"lightning_slt: ticket assembled by {' -> '.join(names)}"
                       + (f"; {zero} of {kept} kept weights start at exactly 0" if kept else ""))

    def mask_sharded_gradients(self, step: int) -> None:
        """Under FSDP2 the gradient hooks never fire (gradients arrive sharded after the
        reduce-scatter): mask them once per step here, before Lightning clips them and steps."""
        if self._masks is not None and self._masks.sharded and self._gradients_masked_at != step:
            self._masks.mask_gradients_()
            self._gradients_masked_at = step

    def close(self) -> None:
        """Remove the masking hooks at the end of the fit (the masks stay readable)."""
        if self._masks is not None and self._attached:
            self._masks.detach()
            self._attached = False


def check_vocabulary(trainer: pl.Trainer, source: RunCheckpoint, what: str) -> None:
    """The one check of an earlier run's vocabulary: weights or a mask of word pieces other than
    the data's (another sentencepiece model) train a ticket that translates word salad with no
    error anywhere. Sources and data modules without a sentencepiece model pass."""
    data = getattr(trainer, "datamodule", None)
    if source.tokenizer is not None and isinstance(getattr(data, "tokenizer", None), Tokenizer):
        data.tokenizer.check_trained_with(source.tokenizer, what)


def session_of(trainer: pl.Trainer) -> PruningSession | None:
    """The pruning session of this trainer's current or last fit, found through its callbacks."""
    for callback in trainer.callbacks:
        if isinstance(callback, PruningCallback) and callback._session is not None:
            return callback._session
    return None


def _check_one_source_each(callbacks: list[PruningCallback]) -> None:
    """One mask source and one weights source per fit: with two, the list order would pick the
    winner, and the callbacks' order is meant not to matter."""
    masks = [cb for cb in callbacks if cb.role is Role.MASK]
    weights = [cb for cb in callbacks if cb.sets_weights]
    for what, found, fix in (
        ("mask", masks, "keep one ConvergedMask or RandomMask (GradualMagnitudePruning tightens the mask it gets)"),
        ("weights", weights, "keep one WeightRewind with a source (WeightRewind(step=k) without a source only records θk)"),
    ):
        if len(found) > 1:
            described = ", ".join(describe_call(describe_callback(cb)) for cb in found)
            raise ValueError(f"{len(found)} callbacks set the ticket's {what}: {described}; one fit has one {what} "
                             f"source, and the list order must not choose between them: {fix}")


_PATH_ARGS = ("checkpoint", "source", "like")  # may move with the run folder; not compared


def _check_nothing_to_assemble(callbacks: list[PruningCallback], ckpt_path: str | None) -> None:
    """A checkpoint with no pruning record (a dense run's) resumed with callbacks that would build a
    ticket: a resumed fit assembles none, so they would not act and the run would go on dense.
    (``WeightRewind`` without a source only records θk: resuming with it is fine.)"""
    acting = [describe_call(describe_callback(cb)) for cb in callbacks if cb.role is not Role.WEIGHTS or cb.sets_weights]
    if acting:
        raise ValueError(
            f"checkpoint {ckpt_path or ''} was trained without pruning callbacks (it holds no lightning_slt record), "
            f"so resuming it with {', '.join(acting)} would go on dense: a resumed fit does not assemble a ticket. "
            f"To prune it, start a new run from it: drop ckpt_path and pass it as the callbacks' source "
            f"(ConvergedMask(source={ckpt_path!r}, ...), WeightRewind(source=..., step=k))"
        )


def _check_same_callbacks(saved: list[dict] | None, current: list[dict], ckpt_path: str | None) -> None:
    """On resume the ticket is not assembled again: a pruning callback added, removed or changed
    would silently not act. Paths (checkpoint/source/like) are not compared: folders move."""
    if saved is None:  # written before callbacks were recorded
        return
    strip = [[{k: v for k, v in cb.items() if k not in _PATH_ARGS} for cb in cbs] for cbs in (saved, current)]
    if sorted(repr(sorted(cb.items())) for cb in strip[0]) == sorted(repr(sorted(cb.items())) for cb in strip[1]):
        return
    added = [describe_call(c) for c, s in zip(current, strip[1]) if s not in strip[0]]
    removed = [describe_call(c) for c, s in zip(saved, strip[0]) if s not in strip[1]]
    raise ValueError(
        f"resuming {ckpt_path or 'a checkpoint'} with other pruning callbacks than it was started with "
        f"(added or changed: {added or 'none'}; removed or changed: {removed or 'none'}). A resumed fit continues the "
        "ticket it has, so these changes would not act. Resume with the callbacks it was started with (the run's "
        "config.yaml), or start a new run from this checkpoint (e.g. ConvergedMask(source=<it>) + WeightRewind) "
        "to prune it differently"
    )
