"""Stop training after a budget of *training* wall time, validation excluded."""

from __future__ import annotations

import time
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

    Args:
        minutes: training wall-time budget.

    Acts at: ``on_train_batch_end``, ``on_validation_start/end``. State: both clocks, so a resumed
    run keeps its budget.
    """

    def __init__(self, minutes: float) -> None:
        if minutes <= 0:
            raise ValueError(f"minutes must be positive, got {minutes}")
        self.minutes = minutes
        self._train_s = 0.0
        self._validation_s = 0.0
        self._mark: float | None = None

    @property
    def train_minutes(self) -> float:
        return (self._train_s + (time.perf_counter() - self._mark if self._mark is not None else 0.0)) / 60

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.train_minutes >= self.minutes and not trainer.should_stop:
            rank_zero_info(f"TrainTimeBudget: {self.minutes} training minutes used at step {trainer.global_step}; stopping")
            trainer.should_stop = True

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._mark is not None:
            self._train_s += time.perf_counter() - self._mark
        self._mark = time.perf_counter()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
        if self._mark is not None:
            self._train_s += time.perf_counter() - self._mark
            self._mark = None
        rank_zero_info(f"TrainTimeBudget: trained {self._train_s / 60:.1f} min, validated {self._validation_s / 60:.1f} min")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"train_s": self.train_minutes * 60, "validation_s": self._validation_s}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_s = state_dict.get("train_s", 0.0)
        self._validation_s = state_dict.get("validation_s", 0.0)
