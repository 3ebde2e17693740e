"""Gradual magnitude pruning (MP) on the cubic schedule of Zhu & Gupta (2018)."""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from lightning_slt._lightning import pl, rank_zero_warn
from lightning_slt.pruning import (
    check_schedule,
    check_scope,
    check_sparsity,
    cubic_sparsity,
    is_pruning_step,
    magnitude_masks,
)
from lightning_slt.pruning.masks import check_keeps_entries
from lightning_slt.pruning.schedule import paper_schedule

from .base import Phase, PruningCallback, PruningSession, pruning_callbacks
from .time_budget import TrainTimeBudget


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
        self._clock_start: tuple[int, dict[int, float]] | None = None  # (step, budget clocks) at train start

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
        self._check_declared_masks(trainer)
        self._check_best_checkpoint(trainer)

    def _check_declared_masks(self, trainer: pl.Trainer) -> None:
        """Refuse at setup, before any log or config copy, a mask callback that declares a higher
        sparsity over the same tensors and scope: the ticket would already be past this target.
        Masks known only at assembly (a source's own mask) are checked there."""
        for cb in pruning_callbacks(trainer):
            declared = getattr(cb, "sparsity", None)
            same = (getattr(cb, "scope", None), getattr(cb, "include", None), getattr(cb, "exclude", None)) == (
                self.scope, self.include, self.exclude)
            if cb.phase == Phase.MASK and declared is not None and same and self.final_sparsity < declared:
                raise ValueError(
                    f"GradualMagnitudePruning: final_sparsity {self.final_sparsity} is below the sparsity {declared} of "
                    f"the ticket's mask ({type(cb).__name__}(sparsity={declared}, scope={self.scope!r})), which is "
                    "assembled before this schedule; masks are nested, so this schedule would never prune anything. "
                    "Raise final_sparsity above it (SLT-MP: initial_sparsity = the ticket's sparsity, final_sparsity = "
                    "the target) or use a less sparse ticket")

    def _check_best_checkpoint(self, trainer: pl.Trainer) -> None:
        """Warn when every best-by-metric checkpoint may pick a validation from before the ramp's end."""
        ranked = [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None) and cb.save_top_k != 0]
        if ranked and not any(getattr(cb, "after_step", 0) >= self._end_step for cb in ranked):
            names = ", ".join(f"{type(cb).__name__}(monitor={cb.monitor!r}, after_step={getattr(cb, 'after_step', 0)})"
                              for cb in ranked)
            rank_zero_warn(
                f"GradualMagnitudePruning: {names} may keep a best checkpoint from before step {self._end_step}, where "
                f"sparsity is still below {self.final_sparsity}; to report the best one at the final sparsity use "
                f"lightning_slt.checkpointing.BestAfterStep(after_step={self._end_step}, monitor=...)")

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._clock_start = (trainer.global_step, {id(b): elapsed for b, elapsed, _ in _time_budgets(trainer)})

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._clock_start is None or trainer.state.fn != "fit":
            return
        start_step, start_clocks = self._clock_start
        steps = trainer.global_step - start_step
        if steps <= 0 or trainer.global_step >= self._end_step:
            return  # no rate measured yet, or the ramp is over
        self._clock_start = None  # checked once per fit, at the first validation with a measured rate
        for budget, elapsed, remaining in _time_budgets(trainer):
            seconds = elapsed - start_clocks.get(id(budget), elapsed)
            if seconds <= 0:
                continue
            rate = steps / seconds
            stop = trainer.global_step + int(max(remaining, 0.0) * rate)
            if stop < self._end_step:
                rank_zero_warn(self._budget_message(budget, rate, stop))

    def _budget_message(self, budget: Any, rate: float, stop: int) -> str:
        reached = self.target_sparsity(self._last_pruning_step(stop))
        name = f"TrainTimeBudget(minutes={budget.minutes})" if isinstance(budget, TrainTimeBudget) else (
            f"the Trainer's max_time ({budget.time_remaining() + budget.time_elapsed():.0f} s)")
        return (
            f"GradualMagnitudePruning: at the measured {rate:.3g} steps/s, {name} will stop the run near step {stop}, "
            f"before the ramp ends at step {self._end_step}: sparsity will reach {reached:.4g} there instead of "
            f"{self.final_sparsity}. Raise the budget (TrainTimeBudget minutes, --trainer.max_time), switch it off "
            f"(TrainTimeBudget(minutes=null), --trainer.max_time=null), or shorten the ramp (end_step <= {stop}, or a "
            "smaller --trainer.max_steps)")

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
        a mistyped sparsity or the wrong ticket. Compared as ``check_nested_target`` does (per
        tensor, or overall for global scope; one entry of rounding slack, so an equal target passes).
        """
        params = self._select(pl_module, self.include, self.exclude)
        current = {n: m for n, m in session.masks.masks.items() if n in params}  # type: ignore[union-attr]
        if not current:
            return
        if set(current) != set(params):
            return  # tensors the mask left alone: the schedule prunes those
        pruned = {n: int((~m).sum()) for n, m in current.items()}
        total, overall = sum(m.numel() for m in current.values()), sum(pruned.values())
        if self.scope == "global":
            idle = round(self.final_sparsity * total) < overall - len(pruned)
            where = f"in all {overall} of {total} entries"
        else:  # idle only if no tensor would change; a global ticket's least pruned tensors may still be raised
            idle = all(round(self.final_sparsity * m.numel()) < pruned[n] - 1 for n, m in current.items())
            n, mask = min(current.items(), key=lambda item: pruned[item[0]] / item[1].numel())
            where = f"even the least pruned, {n!r}, has {pruned[n]} of {mask.numel()} entries pruned"
        if idle:
            raise ValueError(
                f"GradualMagnitudePruning: final_sparsity {self.final_sparsity} is below the {overall / total:.4f} the "
                f"ticket's mask already prunes over the {len(current)} selected tensors ({self.scope}; {where}), set by "
                "the mask phase before this schedule; masks are nested, so this schedule would never prune anything. "
                "Raise final_sparsity above it (SLT-MP: initial_sparsity = the ticket's sparsity, final_sparsity = the "
                "target) or use a less sparse ticket")

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


def _time_budgets(trainer: pl.Trainer) -> list[tuple[Any, float, float]]:
    """Each time limit on this fit as (callback, elapsed seconds, remaining seconds).

    ``TrainTimeBudget`` counts training only (validation excluded); Lightning's ``max_time``
    (its ``Timer`` callback) counts validation too, so its rate includes the validations.
    """
    budgets = []
    for cb in trainer.callbacks:
        if isinstance(cb, TrainTimeBudget) and cb.active and cb.minutes is not None:
            budgets.append((cb, cb.train_minutes * 60, cb.remaining_minutes * 60))
        elif isinstance(cb, pl.callbacks.Timer) and cb.time_remaining() is not None:
            budgets.append((cb, cb.time_elapsed(), cb.time_remaining()))
    return budgets
