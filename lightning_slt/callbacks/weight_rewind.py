"""Rewinding weights to step k: record θk during a run, start a later run from it."""

from __future__ import annotations

import copy
from typing import Any

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from typing_extensions import override

from lightning_slt._lightning import pl, rank_zero_warn
from lightning_slt.artifacts import keys, match_partial
from lightning_slt.artifacts.matching import check_shapes
from lightning_slt.artifacts.checkpoint import (
    LIGHTNING_KINDS,
    TICKET_KINDS,
    Kind,
    RunCheckpoint,
    describe_call,
    rewind_state,
)
from lightning_slt.pruning.selection import covering_patterns, select_parameters
from lightning_slt.pruning.sharding import is_sharded, like, whole

from .base import PruningCallback, PruningSession, Role, describe_callback


class WeightRewind(PruningCallback):
    """Record θ_step during training; with ``source``, start from the θ_step an earlier run recorded.

    SLT of Brix et al. §3.3 rewinds to θk with k = 25k of 500k steps (5 %), taken from the most
    recent run of the chain (not the dense one as in Frankle et al.); LT is ``step=0``. Every
    parameter is replaced, biases and LayerNorm included; the mask of ``ConvergedMask`` then
    zeroes the pruned entries. Snapshots (all parameters) are kept on CPU and saved in the
    checkpoint, so the next round can rewind to this run's θk.

    A source missing some selected parameter is refused, naming it: θk cannot be invented, and
    silently keeping this run's fresh value would mix two initialisations. ``exclude`` it to keep
    the model's own value on purpose (a Hugging Face ``save_pretrained`` file omits frozen
    sinusoidal position tables, which the model rebuilds identically: ``exclude=["*.embed_positions.weight"]``).

    Args:
        step: k, in optimizer steps; 0 records the weights before the first step (θ0).
        source: a checkpoint of an earlier run recorded with ``WeightRewind(step=k)``; a Lightning
            checkpoint (``ModelPruning`` ones too) whose ``global_step`` is k; or a plain
            ``state_dict`` / ``torch.nn.utils.prune`` file / Hugging Face ``save_pretrained``
            folder or ``.safetensors`` file, taken as θk. None: record only.
        restore_optimizer: also restore the optimizer and LR-scheduler state recorded at step k
            (OpenLTH semantics; the paper starts every run with fresh optimizer state).
        include / exclude: glob patterns of parameter names to rewind (default: all parameters);
            the others keep the model's current value.

    Raises:
        ValueError: negative step, a step beyond ``trainer.max_steps``, a source without θk, a
            source whose tensors do not match the model or lack a selected one, or a pattern
            that matches no parameter, two WeightRewind of one step in the trainer (all at setup,
            before training).
        FileNotFoundError: the source does not exist.

    Acts at: ``setup`` (reads the source), ticket phase "weights", ``on_train_batch_start`` (θ0) /
    ``on_train_batch_end`` (records θk).
    State: ``step``, ``snapshot`` (CPU tensors), ``optimizer``, ``lr_schedulers``, under
    ``checkpoint["callbacks"][state_key]`` (written by the checkpoint hooks; one key per step).

    Example::

        callbacks = [WeightRewind(step=1000, source="runs/slt/s0.50/last.ckpt"), ConvergedMask(...)]
    """

    role = Role.WEIGHTS

    def __init__(
        self,
        step: int = 0,
        source: str | None = None,
        restore_optimizer: bool = False,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        self.step = step
        self.source = source
        self.restore_optimizer = restore_optimizer
        self.include = include
        self.exclude = exclude
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative number of optimizer steps, got {step!r}")
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._optimizer_state: list[dict] | None = None
        self._scheduler_state: list[dict] | None = None
        self._source_weights: dict[str, torch.Tensor] | None = None
        self._source_optimizer: dict | None = None

    @property
    @override
    def state_key(self) -> str:
        return keys.rewind_state_key(self.step)

    @property
    def snapshot(self) -> dict[str, torch.Tensor] | None:
        """θ_step recorded in this run (CPU), or None before step k."""
        return self._snapshot

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_one_rewind_per_step(trainer.callbacks)
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        if trainer.max_steps > 0 and self.step > trainer.max_steps:
            if self.source is not None:  # starting from θk still works; this run just won't record its own
                rank_zero_warn(f"WeightRewind step {self.step} > max_steps {trainer.max_steps}: θ_{self.step} of this run is not recorded")
            else:
                raise ValueError(
                    f"WeightRewind step {self.step} is beyond the run (trainer.max_steps={trainer.max_steps}); "
                    "choose a rewind step inside the run, e.g. 5 % of max_steps as the paper's 25k of 500k"
                )
        if self.source is not None:
            self._source_weights, self._source_optimizer = self._read_source(pl_module, self.session.read_source(self.source))

    @property
    @override
    def sets_weights(self) -> bool:
        return self.source is not None

    def _read_source(self, pl_module: pl.LightningModule, source: RunCheckpoint) -> tuple[dict, dict | None]:
        what = f"rewind source {self.source!r}"
        if self.step in source.snapshots:
            weights = source.snapshots[self.step]
        elif source.step == self.step and source.weights is not None:
            weights = source.weights  # a Lightning checkpoint saved at global step k holds θk
        elif source.snapshots or source.kind in LIGHTNING_KINDS:
            raise ValueError(_no_snapshot_message(what, source, self.step))
        elif source.weights is None:
            raise ValueError(f"{what} holds only a mask ({source.kind}), no weights to rewind to")
        else:
            rank_zero_warn(f"{what} holds weights but no recorded θ_{self.step} ({source.kind}): taking its weights as θ_{self.step}")
            weights = source.weights
        params = select_parameters(pl_module, self.include, self.exclude)
        names, missing = match_partial(params, weights, what)
        if missing:
            raise ValueError(_missing_message(what, missing, params))
        mapped = {n: weights[s] for n, s in names.items()}
        check_shapes(mapped, params, what)
        optimizer = source.optimizer_states.get(self.step)
        if self.restore_optimizer and optimizer is None:
            if source.kind in TICKET_KINDS:
                raise ValueError(f"{what} is a {source.kind} file and holds no optimizer state; pass the run's "
                                 "Lightning checkpoint as source for restore_optimizer=True")
            raise ValueError(f"{what} recorded no optimizer state at step {self.step}; record with restore_optimizer=True")
        return mapped, optimizer

    @override
    @torch.no_grad()
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        if self._source_weights is None:
            return
        params = dict(pl_module.named_parameters())
        for name, value in self._source_weights.items():
            params[name].copy_(like(value, params[name]))  # a DTensor parameter: its shard of θk
        session.reference = self._source_weights
        if self.restore_optimizer and self._source_optimizer is not None:
            for optimizer, state in zip(trainer.optimizers, self._source_optimizer["optimizer"]):
                _load_optimizer_state(pl_module, optimizer, state)
            for config, state in zip(trainer.lr_scheduler_configs, self._source_optimizer["lr_schedulers"]):
                config.scheduler.load_state_dict(state)
        self._source_weights = None

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        # θ0: the assembled ticket (the session assembles at on_train_start), before the first step
        if self.step == 0 and trainer.global_step == 0 and self._snapshot is None:
            self._record(trainer, pl_module)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step and self._snapshot is None:
            self._record(trainer, pl_module)

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot = {n: p.detach().to("cpu", copy=True) for n, p in pl_module.named_parameters()}
        if self.restore_optimizer:
            self._optimizer_state = [_optimizer_state(pl_module, o) for o in trainer.optimizers]
            self._scheduler_state = [copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs]

    # The state lives under checkpoint["callbacks"][state_key], the key and layout Lightning's
    # state_dict()/load_state_dict() would use (artifacts.keys.rewind_state_key). Saved through the
    # checkpoint hooks instead, because Lightning refuses two stateful callbacks with one key in
    # Trainer() with only "state_key must be unique", while check_one_rewind_per_step names both.
    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if "callbacks" not in checkpoint:  # a weights-only save keeps no callback state
            return
        # Held as shards under FSDP2 (memory per rank: its shard); saved whole (every rank gathers,
        # rank 0 writes), so the checkpoint is a source for any next round, sharded or not.
        snapshot = None if self._snapshot is None else {n: whole(t) for n, t in self._snapshot.items()}
        checkpoint["callbacks"][self.state_key] = rewind_state(self.step, snapshot, self._optimizer_state,
                                                               self._scheduler_state)

    @override
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        state = (checkpoint.get("callbacks") or {}).get(self.state_key)
        if not state:
            return
        if state.get(keys.REWIND_STEP, self.step) != self.step:
            raise ValueError(f"checkpointed WeightRewind recorded step {state[keys.REWIND_STEP]}, this one "
                             f"step {self.step}")
        self._snapshot = state.get(keys.REWIND_SNAPSHOT)
        self._optimizer_state = state.get(keys.REWIND_OPTIMIZER)
        self._scheduler_state = state.get(keys.REWIND_SCHEDULERS)


def check_one_rewind_per_step(callbacks: list[Any]) -> None:
    """Refuse two ``WeightRewind`` of one step in a trainer: their θk would share one checkpoint
    key, the later state overwriting the other, and only one of them could rewind.

    Raises:
        ValueError: naming both callbacks and the fix.
    """
    by_step: dict[int, list[WeightRewind]] = {}
    for callback in callbacks:
        if isinstance(callback, WeightRewind):
            by_step.setdefault(callback.step, []).append(callback)
    for step, found in sorted(by_step.items()):
        if len(found) > 1:
            described = ", ".join(describe_call(describe_callback(cb)) for cb in found)
            raise ValueError(
                f"{len(found)} WeightRewind callbacks record step {step}: {described}; one run records θ_{step} once "
                f"(the checkpoint keeps it under one key, {keys.rewind_state_key(step)!r}): keep one WeightRewind per "
                f"step (WeightRewind(step={step}, source=...) both starts from the source's θ_{step} and records this "
                f"run's), e.g. remove the one a second config file added to trainer.callbacks"
            )


def _optimizer_state(pl_module: pl.LightningModule, optimizer: Any) -> dict:
    """The optimizer's state on the CPU. With FSDP2 shards, the whole state keyed by parameter name
    (``get_optimizer_state_dict``, a collective every rank joins at step k), so any later run,
    sharded or not, can load it."""
    if not any(is_sharded(p) for p in pl_module.parameters()):
        return _cpu_copy(optimizer.state_dict())
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, broadcast_from_rank0=False)
    return _cpu_copy(get_optimizer_state_dict(pl_module, optimizer, options=options))


def _load_optimizer_state(pl_module: pl.LightningModule, optimizer: Any, state: dict) -> None:
    """Load a state recorded by :func:`_optimizer_state`: a whole one (keyed by parameter name)
    through ``set_optimizer_state_dict``, which shards it like the parameters; else as saved."""
    named = any(isinstance(key, str) for group in state.get("param_groups", []) for key in group.get("params", []))
    if not named:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(pl_module, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


def _cpu_copy(state: Any) -> Any:
    """A copy of an optimizer state on the CPU (tensors copied, containers rebuilt, other values immutable)."""
    return apply_to_collection(state, torch.Tensor, lambda t: t.detach().to("cpu", copy=True))


def _no_snapshot_message(what: str, source: RunCheckpoint, step: int) -> str:
    recorded = sorted(source.snapshots)
    if source.kind in TICKET_KINDS:
        fix = (f"set step={recorded[0]}, or export the run's checkpoint again with --winning-ticket "
               f"--step {step} if it recorded that step")
    else:
        fix = f"train the source run with WeightRewind(step={step}) or rewind to a recorded step"
        if source.step is not None and source.weights is not None:
            fix += (f"; its state_dict holds the weights at global step {source.step}: pass step={source.step} to "
                    "start from them")
        if not recorded and source.kind in (Kind.LIGHTNING, Kind.LIGHTNING_MODEL_PRUNING):  # ModelPruning writes these
            fix += ("; a Lightning ModelPruning run keeps its original weights (use_lottery_ticket_hypothesis) "
                    "in memory only, so its checkpoints hold no θk: ConvergedMask(<checkpoint>, sparsity=None) "
                    "reads their mask (the zeros)")
    return f"{what} has no θ_{step}: it recorded steps {recorded}; {fix}"


def _missing_message(what: str, missing: list[str], params: dict[str, torch.Tensor]) -> str:
    frozen = all(not params[n].requires_grad for n in missing)
    why = (" (all frozen, requires_grad=False: keeping the model's own values is safe when the model builds them "
           "the same way, e.g. sinusoidal position tables)" if frozen else "")
    return (f"{what} has no weights for {len(missing)} of the {len(params)} parameters to rewind: {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}{why}; θ_k cannot be invented — pass "
            f"exclude={covering_patterns(missing, params)} to keep the model's current values for them, "
            "or a source that has them")

