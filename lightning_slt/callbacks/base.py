"""What every pruning callback shares: one mask store per fit, and ticket assembly in phases.

Several callbacks act on the same masks (``ConvergedMask`` sets them, ``GradualMagnitudePruning``
tightens them, ``SignOnlyReinit`` reads them), so they share one :class:`PruningSession` per
Trainer. The first pruning callback in ``trainer.callbacks`` is its *leader*: it creates the
session, saves the masks under ``checkpoint["lightning_slt"]``, restores them, and at
``on_train_start`` of a fresh fit assembles the ticket by calling every pruning callback's
:meth:`PruningCallback.assemble` in fixed phase order, whatever the order of the list:
weights source (``WeightRewind``, then ``RandomReinit``), mask (``ConvergedMask``,
``RandomMask``), schedule start (``GradualMagnitudePruning``), value transform
(``SignOnlyReinit``); then the pruned entries are zeroed. On resume nothing is assembled: the
restored weights and masks win, and the pruning callbacks must be those the run was started with
(a mask callback added or changed on resume would otherwise be dropped without a word; a
checkpoint with masks resumed with no pruning callback at all is refused by
``artifacts.checkpoint.check_resume_keeps_masks``, which ``TranslationModule`` calls).

Why ``on_train_start``: Lightning calls ``setup``, then restores callbacks and weights, then
``on_fit_start``, then the optimizer state; only at ``on_train_start`` is everything in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor
from typing_extensions import override

from lightning_slt._lightning import Callback, pl, rank_zero_info
from lightning_slt._runtime import destroy_gloo_group_at_exit
from lightning_slt.artifacts import keys
from lightning_slt.artifacts.checkpoint import describe_call, pruning_state, run_checkpoint
from lightning_slt.pruning import ParameterMasks, kept_zeros, prunable_parameters


class Phase:
    """Order of ticket assembly (lower first)."""

    WEIGHTS = 10
    REINIT = 15
    MASK = 20
    SCHEDULE = 30
    VALUES = 40


@dataclass
class PruningSession:
    """State shared by the pruning callbacks of one fit.

    Attributes:
        masks: the live masks, built at ``on_train_start`` over all named parameters.
        restored: True when this fit resumed from a checkpoint (no ticket assembly).
        previous_masks: the mask of the run this ticket came from (for overlap metrics).
        reference: θk this ticket was rewound to (for sign-agreement metrics), on CPU.
        ticket: how the ticket was assembled (callbacks, kept entries, kept entries that start
            at exactly 0), saved in every checkpoint under ``lightning_slt/ticket``.
    """

    masks: ParameterMasks | None = None
    restored: bool = False
    pending_masks: dict[str, Tensor] = field(default_factory=dict)
    previous_masks: dict[str, Tensor] | None = None
    reference: dict[str, Tensor] | None = None
    ticket: dict[str, Any] | None = None


def pruning_callbacks(trainer: pl.Trainer) -> list[PruningCallback]:
    return [cb for cb in trainer.callbacks if isinstance(cb, PruningCallback)]


def session_of(trainer: pl.Trainer) -> PruningSession | None:
    """The pruning session of this trainer's current fit, or None without pruning callbacks."""
    return getattr(trainer, keys.SESSION_ATTR, None)


class PruningCallback(Callback):
    """Base class: subclasses set ``phase`` and implement :meth:`assemble` and their own hooks."""

    phase: ClassVar[int]

    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        """Contribute to a fresh fit's ticket (not called on resume)."""

    def _is_leader(self, trainer: pl.Trainer) -> bool:
        return pruning_callbacks(trainer)[0] is self

    def _session(self, trainer: pl.Trainer) -> PruningSession:
        session = session_of(trainer)
        if session is None:
            raise RuntimeError(f"{type(self).__name__} used outside trainer.fit: no pruning session")
        return session

    @staticmethod
    def _select(pl_module: pl.LightningModule, include: Sequence[str] | None, exclude: Sequence[str] | None):
        return prunable_parameters(pl_module, include=include, exclude=exclude)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_gloo_group_at_exit()  # CPU DDP ranks: a clean exit (see lightning_slt._runtime)
        if stage == "fit" and self._is_leader(trainer):
            _check_one_source_each(pruning_callbacks(trainer))
            setattr(trainer, keys.SESSION_ATTR, PruningSession())

    @override
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        session = session_of(trainer)
        if session is None or not self._is_leader(trainer):
            return
        session.restored = True
        saved = run_checkpoint(checkpoint, trainer.ckpt_path or "the checkpoint")
        _check_same_callbacks(saved.callbacks, [describe_callback(cb) for cb in pruning_callbacks(trainer)],
                              trainer.ckpt_path)
        session.pending_masks = saved.masks or {}
        session.ticket = saved.ticket

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        session = session_of(trainer)
        if session is None or session.masks is None or not self._is_leader(trainer):
            return
        checkpoint[keys.STATE_KEY] = pruning_state(
            session.masks.state_dict(), [describe_callback(cb) for cb in pruning_callbacks(trainer)], session.ticket)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._is_leader(trainer):
            return
        session = self._session(trainer)
        session.masks = ParameterMasks(dict(pl_module.named_parameters()))
        if session.restored:
            session.masks.load_state_dict(session.pending_masks)
            session.masks.apply_()
        else:
            self._assemble_ticket(trainer, pl_module, session)
        for optimizer in trainer.optimizers:
            session.masks.attach(optimizer)

    @torch.no_grad()
    def _assemble_ticket(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        ordered = sorted(pruning_callbacks(trainer), key=lambda cb: cb.phase)  # stable within a phase
        for callback in ordered:
            callback.assemble(trainer, pl_module, session)
        session.masks.apply_()  # type: ignore[union-attr]
        kept, zero = kept_zeros(session.masks.params, session.masks.masks)  # type: ignore[union-attr]
        names = [type(cb).__name__ for cb in ordered]
        session.ticket = {"assembled_by": names, "kept": kept, "kept_zero": zero}
        rank_zero_info(f"lightning_slt: ticket assembled by {' -> '.join(names)}"
                       + (f"; {zero} of {kept} kept weights start at exactly 0" if kept else ""))

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        session = session_of(trainer)
        if stage == "fit" and session is not None and session.masks is not None and self._is_leader(trainer):
            session.masks.detach()


def _check_one_source_each(callbacks: list[PruningCallback]) -> None:
    """One mask source and one weights source per fit: with two, the list order would pick the
    winner, and the callbacks' order is meant not to matter."""
    masks = [cb for cb in callbacks if cb.phase == Phase.MASK]
    weights = [cb for cb in callbacks if cb.phase == Phase.WEIGHTS and getattr(cb, "source", None) is not None]
    for what, found, fix in (
        ("mask", masks, "keep one ConvergedMask or RandomMask (GradualMagnitudePruning tightens the mask it gets)"),
        ("weights", weights, "keep one WeightRewind with a source (WeightRewind(step=k) without a source only records θk)"),
    ):
        if len(found) > 1:
            described = ", ".join(describe_call(describe_callback(cb)) for cb in found)
            raise ValueError(f"{len(found)} callbacks set the ticket's {what}: {described}; one fit has one {what} "
                             f"source, and the list order must not choose between them: {fix}")


_PATH_ARGS = ("checkpoint", "source", "like")  # may move with the run folder; not compared


def describe_callback(callback: PruningCallback) -> dict[str, Any]:
    """Class and public settings of a pruning callback (saved with every checkpoint)."""
    settings = {k: v for k, v in vars(callback).items() if not k.startswith("_")
                and (v is None or isinstance(v, (str, int, float, bool)) or
                     (isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float)) for x in v)))}
    return {"class": type(callback).__name__, **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}}


def _check_same_callbacks(saved: list[dict] | None, current: list[dict], ckpt_path: str | None) -> None:
    """On resume the ticket is not assembled again: a pruning callback added, removed or changed
    would silently not act. Paths (checkpoint/source/like) are not compared: folders move."""
    if saved is None:  # written before callbacks were recorded
        return
    strip = [[{k: v for k, v in cb.items() if k not in _PATH_ARGS} for cb in cbs] for cbs in (saved, current)]
    if sorted(map(repr, strip[0])) == sorted(map(repr, strip[1])):
        return
    added = [describe_call(c) for c, s in zip(current, strip[1]) if s not in strip[0]]
    removed = [describe_call(c) for c, s in zip(saved, strip[0]) if s not in strip[1]]
    raise ValueError(
        f"resuming {ckpt_path or 'a checkpoint'} with other pruning callbacks than it was started with "
        f"(added or changed: {added or 'none'}; removed or changed: {removed or 'none'}). A resumed fit continues the "
        "ticket it has, so these changes would not act. Resume with the callbacks it was started with (the run's "
        "config.yaml), or start a new run from this checkpoint (e.g. ConvergedMask(checkpoint=<it>) + WeightRewind) "
        "to prune it differently"
    )
