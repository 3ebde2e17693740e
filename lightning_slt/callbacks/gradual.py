"""Gradual magnitude pruning (MP) on the cubic schedule of Zhu & Gupta (2018)."""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from lightning_slt._lightning import pl
from lightning_slt.pruning import (
    check_schedule,
    check_scope,
    check_sparsity,
    cubic_sparsity,
    is_pruning_step,
    magnitude_masks,
)

from .base import Phase, PruningCallback, PruningSession


class GradualMagnitudePruning(PruningCallback):
    """Raise sparsity on a cubic curve during training, pruning the smallest weights of each tensor.

    MP of Brix et al. §3.1: s_t = s_f + (s_i - s_f) * (1 - (t - t_b) / (t_e - t_b))^3 at the
    pruning steps t_b, t_b + Δt, ... and t_e (t counts optimizer steps); s_f is held after t_e.
    Masks are nested, so with ``initial_sparsity=0.6`` on a 60 % ticket (SLT-MP) the ticket's
    zeros stay zero. The paper: t_b = 0, t_e = 400k, Δt = 10k of 500k steps.

    Args:
        final_sparsity: s_f, fraction in [0, 1) reached at ``end_step``.
        initial_sparsity: s_i, applied at ``begin_step`` (at step 0 it is part of the ticket).
        begin_step: t_b, first pruning step.
        end_step: t_e; None means round(0.8 * trainer.max_steps), the paper's 400k of 500k.
        frequency: Δt in steps; None means max(1, round(0.02 * trainer.max_steps)) (10k of 500k).
        scope: "layerwise" (paper) or "global".
        include / exclude: glob patterns of parameter names (default: all tensors of >= 2 dims).

    Raises:
        ValueError: sparsity outside [0, 1), initial above final, a schedule whose end precedes
            its start, or (at setup) a schedule that needs ``max_steps`` the Trainer lacks or
            that ends after ``max_steps``.

    Acts at: ``on_train_start`` (step-0 prune, fresh fits) and ``on_train_batch_end``.
    State: ``last_pruned_step``, ``sparsity``.

    Example::

        trainer = Trainer(max_steps=5000, callbacks=[GradualMagnitudePruning(final_sparsity=0.9)])
    """

    phase = Phase.SCHEDULE

    def __init__(
        self,
        final_sparsity: float,
        initial_sparsity: float = 0.0,
        begin_step: int = 0,
        end_step: int | None = None,
        frequency: int | None = None,
        scope: str = "layerwise",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        self.final_sparsity = final_sparsity
        self.initial_sparsity = initial_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.scope = scope
        self.include = include
        self.exclude = exclude
        self._validate()
        self._end_step = end_step
        self._frequency = frequency
        self._last_pruned_step: int | None = None
        self._sparsity = 0.0

    def _validate(self) -> None:
        check_sparsity(self.final_sparsity, "final_sparsity")
        check_sparsity(self.initial_sparsity, "initial_sparsity")
        check_scope(self.scope)
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError(
                f"initial_sparsity ({self.initial_sparsity}) must not exceed final_sparsity ({self.final_sparsity})"
            )
        if self.end_step is not None:
            check_schedule(self.begin_step, self.end_step, self.frequency or 1)
        elif self.frequency is not None:
            check_schedule(self.begin_step, self.begin_step, self.frequency)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        max_steps = trainer.max_steps
        if (self.end_step is None or self.frequency is None) and max_steps <= 0:
            raise ValueError(
                "GradualMagnitudePruning: end_step/frequency default to 80 % / 2 % of trainer.max_steps, "
                "but the Trainer has no max_steps; set Trainer(max_steps=...) or pass end_step and frequency"
            )
        self._end_step = self.end_step if self.end_step is not None else round(0.8 * max_steps)
        self._frequency = self.frequency if self.frequency is not None else max(1, round(0.02 * max_steps))
        check_schedule(self.begin_step, self._end_step, self._frequency)
        if max_steps > 0 and self._end_step > max_steps:
            raise ValueError(
                f"GradualMagnitudePruning: end_step ({self._end_step}) is after trainer.max_steps ({max_steps}); "
                "the final sparsity would never be reached"
            )
        self._select(pl_module, self.include, self.exclude)  # fail on bad patterns before training

    def target_sparsity(self, step: int) -> float:
        return cubic_sparsity(step, self.final_sparsity, self.initial_sparsity, self.begin_step, self._end_step)

    @override
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        self._maybe_prune(trainer, pl_module, session)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._maybe_prune(trainer, pl_module, self._session(trainer))

    def _maybe_prune(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        step = trainer.global_step
        if step == self._last_pruned_step or not is_pruning_step(step, self.begin_step, self._end_step, self._frequency):
            return
        params = self._select(pl_module, self.include, self.exclude)
        current = {n: m for n, m in session.masks.masks.items() if n in params}  # type: ignore[union-attr]
        target = self.target_sparsity(step)
        masks = magnitude_masks(params, target, self.scope, current=current)
        session.masks.set_masks_(masks, trainer.optimizers)  # type: ignore[union-attr]
        self._last_pruned_step, self._sparsity = step, target

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"last_pruned_step": self._last_pruned_step, "sparsity": self._sparsity}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_pruned_step = state_dict.get("last_pruned_step")
        self._sparsity = state_dict.get("sparsity", 0.0)
