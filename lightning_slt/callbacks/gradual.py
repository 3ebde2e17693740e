"""Gradual magnitude pruning (MP) on the cubic schedule of Zhu & Gupta (2018)."""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from lightning_slt._lightning import pl, rank_zero_warn
from lightning_slt.checkpointing import warn_best_may_precede
from lightning_slt.pruning import (
    check_keeps_entries,
    check_schedule,
    check_scope,
    check_sparsity,
    cubic_sparsity,
    is_pruning_step,
    magnitude_masks,
    targets_below,
)
from lightning_slt.pruning.schedule import paper_schedule

from .base import PruningCallback, PruningSession, Role
from .time_budget import StopForecast, clock_marks, forecast_stops


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
            its start; at setup, a schedule that needs ``max_steps`` the Trainer lacks, ends
            after ``max_steps`` or whose final count empties a tensor; at ticket assembly, a
            ``final_sparsity`` below what the ticket's mask already prunes (nothing to do).

    Warns: at setup, when no best-by-metric checkpoint is restricted to the ramp's end (the
    paper reports MP's best checkpoint at the final sparsity only; ``BestAfterStep`` does that),
    and at the first validation, when a time budget (``TrainTimeBudget`` or ``max_time``) will
    stop the run, at the measured steps per second, before ``end_step``.

    Acts at: ``on_train_start`` (step-0 prune, fresh fits) and ``on_train_batch_end``.
    State: ``last_pruned_step``, ``sparsity``.

    Example::

        trainer = Trainer(max_steps=5000, callbacks=[GradualMagnitudePruning(final_sparsity=0.9)])
    """

    role = Role.SCHEDULE

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
        self._clock_marks: tuple[int, dict[int, float]] | None = None  # (step, time-limit clocks) at fit start

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
        paper = paper_schedule(max_steps)
        self._end_step = self.end_step if self.end_step is not None else paper["mp_end_step"]
        self._frequency = self.frequency if self.frequency is not None else paper["mp_frequency"]
        check_schedule(self.begin_step, self._end_step, self._frequency)
        if max_steps > 0 and self._end_step > max_steps:
            raise ValueError(
                f"GradualMagnitudePruning: end_step ({self._end_step}) is after trainer.max_steps ({max_steps}); "
                f"the final sparsity would never be reached: set end_step <= {max_steps} (or leave it null for 80 % "
                f"of max_steps) or raise trainer.max_steps to at least {self._end_step}"
            )
        params = self._select(pl_module, self.include, self.exclude)  # fail on bad patterns before training
        # Targets only rise, so the final count is the one that could empty a tensor: refuse it now.
        check_keeps_entries({n: p.numel() for n, p in params.items()}, self.final_sparsity, self.scope,
                            what="GradualMagnitudePruning final_sparsity")
        self._check_declared_mask()
        warn_best_may_precede(trainer, self._end_step, "GradualMagnitudePruning",
                              f"sparsity is still below {self.final_sparsity}")

    def _check_declared_mask(self) -> None:
        """Refuse at setup, before any log or config copy, a mask callback that declares a higher
        sparsity over the same tensors and scope: the ticket would already be past this target.
        Masks known only at assembly (a source's own mask) are checked there."""
        mask = self.session.mask_source
        if mask is None:
            return
        settings = mask.settings()
        declared = settings.get("sparsity")
        same = [settings.get(k) for k in ("scope", "include", "exclude")] == [self.scope, self.include, self.exclude]
        if declared is not None and same and self.final_sparsity < declared:
            raise ValueError(
                f"GradualMagnitudePruning: final_sparsity {self.final_sparsity} is below the sparsity {declared} of "
                f"the ticket's mask ({type(mask).__name__}(sparsity={declared}, scope={self.scope!r})), which is "
                "assembled before this schedule; masks are nested, so this schedule would never prune anything. "
                "Raise final_sparsity above it (SLT-MP: initial_sparsity = the ticket's sparsity, final_sparsity = "
                "the target) or use a less sparse ticket")

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._clock_marks = clock_marks(trainer)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Warn once per fit, at the first validation with a measured rate, when a time limit will
        stop the run before the ramp ends (the schedule would never reach its final sparsity)."""
        if trainer.sanity_checking or self._clock_marks is None or trainer.state.fn != "fit":
            return
        if trainer.global_step >= self._end_step:
            return
        forecasts = forecast_stops(trainer, self._clock_marks)
        if forecasts:
            self._clock_marks = None
        for forecast in forecasts:
            if forecast.step < self._end_step:
                rank_zero_warn(self._budget_message(forecast))

    def _budget_message(self, forecast: StopForecast) -> str:
        reached = self.target_sparsity(self._last_pruning_step(forecast.step))
        return (
            f"GradualMagnitudePruning: at the measured {forecast.steps_per_second:.3g} steps/s, {forecast.budget} will "
            f"stop the run near step {forecast.step}, before the ramp ends at step {self._end_step}: sparsity will reach "
            f"{reached:.4g} there instead of {self.final_sparsity}. Raise the budget (TrainTimeBudget minutes, "
            "--trainer.max_time), switch it off (TrainTimeBudget(minutes=null), --trainer.max_time=null), or shorten "
            f"the ramp (end_step <= {forecast.step}, or a smaller --trainer.max_steps)")

    def _last_pruning_step(self, step: int) -> int:
        """The last step <= ``step`` at which the schedule updates the masks."""
        if step >= self._end_step:
            return self._end_step
        if step < self.begin_step:
            return step
        return self.begin_step + (step - self.begin_step) // self._frequency * self._frequency

    def target_sparsity(self, step: int) -> float:
        return cubic_sparsity(step, self.final_sparsity, self.initial_sparsity, self.begin_step, self._end_step)

    @override
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        self._check_target_above_ticket(pl_module, session)
        self._maybe_prune(trainer, pl_module, session)

    def _check_target_above_ticket(self, pl_module: pl.LightningModule, session: PruningSession) -> None:
        """Refuse a final target below the sparsity of the mask assembled before this schedule.

        Masks are nested, so such a schedule never prunes anything: a silent no-op, most likely
        a mistyped sparsity or the wrong ticket. Idle means every selected tensor's target is below
        its mask (``pruning.targets_below``); tensors the mask left alone are pruned by the schedule.
        """
        params = self._select(pl_module, self.include, self.exclude)
        current = {n: m for n, m in session.masks.masks.items() if n in params}
        if not current or set(current) != set(params):
            return
        below = targets_below(current, self.final_sparsity, self.scope)
        if len(below) < len(current):
            return
        pruned = {n: int((~m).sum()) for n, m in current.items()}
        total, overall = sum(m.numel() for m in current.values()), sum(pruned.values())
        if self.scope == "global":
            where = f"in all {overall} of {total} entries"
        else:
            n, mask = min(current.items(), key=lambda item: pruned[item[0]] / item[1].numel())
            where = f"even the least pruned, {n!r}, has {pruned[n]} of {mask.numel()} entries pruned"
        raise ValueError(
            f"GradualMagnitudePruning: final_sparsity {self.final_sparsity} is below the {overall / total:.4f} the "
            f"ticket's mask already prunes over the {len(current)} selected tensors ({self.scope}; {where}), set by "
            "the mask phase before this schedule; masks are nested, so this schedule would never prune anything. "
            "Raise final_sparsity above it (SLT-MP: initial_sparsity = the ticket's sparsity, final_sparsity = the "
            "target) or use a less sparse ticket")

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._maybe_prune(trainer, pl_module, self.session)

    def _maybe_prune(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        step = trainer.global_step
        if step == self._last_pruned_step or not is_pruning_step(step, self.begin_step, self._end_step, self._frequency):
            return
        params = self._select(pl_module, self.include, self.exclude)
        current = {n: m for n, m in session.masks.masks.items() if n in params}
        target = self.target_sparsity(step)
        masks = magnitude_masks(params, target, self.scope, current=current)
        session.masks.set_masks_(masks, trainer.optimizers)
        self._last_pruned_step, self._sparsity = step, target

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"last_pruned_step": self._last_pruned_step, "sparsity": self._sparsity}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_pruned_step = state_dict.get("last_pruned_step")
        self._sparsity = state_dict.get("sparsity", 0.0)

