"""Stop training after a budget of *training* wall time, validation excluded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from typing_extensions import override

from lightning_slt._lightning import Callback, pl, rank_zero_info


class TrainTimeBudget(Callback):
    """Stop after ``minutes`` of training wall time; time spent validating is not counted.

    Lightning's ``max_time`` counts validation too, so a run that validates (decodes) often gets
    less training for the same budget. This one times training only, logs both clocks with every
    validation (``time/train_minutes``, ``time/validation_minutes``), so BLEU can be plotted
    against training time, and stops through ``trainer.should_stop`` (a clean stop: checkpoints
    and ``on_train_end`` run as usual).

    One budget per run: with several in ``trainer.callbacks`` only the last one acts, so a later
    ``--config`` replaces the base config's budget (the CLI concatenates callback lists), e.g.
    ``{minutes: null}`` in a step-bounded recipe switches the base's 60 minutes off.

    Args:
        minutes: training wall-time budget; None: no limit (the clocks are still logged).

    Acts at: ``on_train_batch_end``, ``on_validation_start/end``. State: both clocks of the acting
    budget (``checkpoint["callbacks"]["TrainTimeBudget"]``), so a resumed run keeps its budget.
    """

    def __init__(self, minutes: float | None) -> None:
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
            raise ValueError(f"TrainTimeBudget: minutes must be a positive number, or null for no limit; got {minutes!r}")
        self.minutes = minutes
        self.active = True  # False when a later TrainTimeBudget of the same trainer replaces this one
        self._train_s = 0.0
        self._validation_s = 0.0
        self._mark: float | None = None
        self._validating = False

    @property
    def train_minutes(self) -> float:
        """Training minutes so far (resumed runs included), without a validation in progress."""
        running = time.perf_counter() - self._mark if self._mark is not None and not self._validating else 0.0
        return (self._train_s + running) / 60

    @property
    def remaining_minutes(self) -> float:
        """Training minutes left before this budget stops the run (``inf`` without a limit or when replaced)."""
        if self.minutes is None or not self.active:
            return float("inf")
        return self.minutes - self.train_minutes

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        budgets = [cb for cb in trainer.callbacks if isinstance(cb, TrainTimeBudget)]
        self.active = budgets[-1] is self
        if not self.active and stage == "fit":
            rank_zero_info(f"TrainTimeBudget(minutes={self.minutes}) is replaced by the later "
                           f"TrainTimeBudget(minutes={budgets[-1].minutes}) (one budget per run: the last one acts)")

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active:
            self._mark = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.remaining_minutes <= 0 and not trainer.should_stop:
            rank_zero_info(f"TrainTimeBudget: {self.minutes} training minutes used at step {trainer.global_step}; stopping")
            trainer.should_stop = True

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active:
            return
        if self._mark is not None:
            self._train_s += time.perf_counter() - self._mark
        self._mark = time.perf_counter()
        self._validating = True

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active:
            return
        self._validating = False
        if self._mark is not None and not trainer.sanity_checking:
            self._validation_s += time.perf_counter() - self._mark
            self._mark = time.perf_counter()
        if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer.logger is not None:
            trainer.logger.log_metrics(
                {"time/train_minutes": self._train_s / 60, "time/validation_minutes": self._validation_s / 60},
                step=trainer.global_step,
            )

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active:
            return
        if self._mark is not None:
            self._train_s += time.perf_counter() - self._mark
            self._mark = None
        rank_zero_info(f"TrainTimeBudget: trained {self._train_s / 60:.1f} min, validated {self._validation_s / 60:.1f} min")

    # The acting budget's clocks live under checkpoint["callbacks"]["TrainTimeBudget"], the key
    # Lightning's state_dict() would use. Saved through the checkpoint hooks instead, because
    # Lightning refuses two stateful callbacks of one type and a later config adds a second budget.
    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.active and "callbacks" in checkpoint:
            checkpoint["callbacks"][self.state_key] = {"train_s": self.train_minutes * 60, "validation_s": self._validation_s}

    @override
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = (checkpoint.get("callbacks") or {}).get(self.state_key)
        if self.active and state:
            self._train_s = state.get("train_s", 0.0)
            self._validation_s = state.get("validation_s", 0.0)


@dataclass(frozen=True)
class StopForecast:
    """Where a time limit will stop this fit, at the training rate measured so far."""

    budget: str  # how the user set it, e.g. "TrainTimeBudget(minutes=60)"
    step: int
    steps_per_second: float


def clock_marks(trainer: pl.Trainer) -> tuple[int, dict[int, float]]:
    """(global step, elapsed seconds of each time limit), to measure a rate from later."""
    return trainer.global_step, {id(limit): elapsed for limit, elapsed, _ in _time_limits(trainer)}


def forecast_stops(trainer: pl.Trainer, since: tuple[int, dict[int, float]]) -> list[StopForecast]:
    """For each time limit on this fit, the step it will stop the run near, at the rate since ``since``.

    ``TrainTimeBudget`` counts training only (validation excluded); Lightning's ``max_time``
    (its ``Timer`` callback) counts validation too, so its rate includes the validations.
    """
    start_step, start_clocks = since
    steps = trainer.global_step - start_step
    forecasts = []
    for limit, elapsed, remaining in _time_limits(trainer):
        seconds = elapsed - start_clocks.get(id(limit), elapsed)
        if steps <= 0 or seconds <= 0:
            continue
        rate = steps / seconds
        name = f"TrainTimeBudget(minutes={limit.minutes})" if isinstance(limit, TrainTimeBudget) else (
            f"the Trainer's max_time ({elapsed + remaining:.0f} s)")
        forecasts.append(StopForecast(name, trainer.global_step + int(max(remaining, 0.0) * rate), rate))
    return forecasts


def _time_limits(trainer: pl.Trainer) -> list[tuple[Any, float, float]]:
    """Each time limit on this fit as (callback, elapsed seconds, remaining seconds)."""
    limits = []
    for cb in trainer.callbacks:
        if isinstance(cb, TrainTimeBudget) and cb.active and cb.minutes is not None:
            limits.append((cb, cb.train_minutes * 60, cb.remaining_minutes * 60))
        elif isinstance(cb, pl.callbacks.Timer) and cb.time_remaining() is not None:
            limits.append((cb, cb.time_elapsed(), cb.time_remaining()))
    return limits
