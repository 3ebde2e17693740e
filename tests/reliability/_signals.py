"""A callback that sends a real signal to its own process at a chosen point of a run, for the
SIGTERM tests (usable from a LightningCLI YAML: ``tests.reliability._signals.SignalAt``)."""

from __future__ import annotations

import os
import signal

from lightning_slt._lightning import Callback


class SignalAt(Callback):
    """Sends ``signum`` (default SIGTERM) to this process when ``global_step == step``, at the start
    of a training batch (``phase="train"``) or of a validation batch (``phase="validation"``)."""

    def __init__(self, step: int, phase: str = "train", signum: int = int(signal.SIGTERM)) -> None:
        self.step, self.phase, self.signum = step, phase, signum

    def _maybe(self, trainer, phase: str) -> None:
        if phase == self.phase and trainer.global_step == self.step and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._maybe(trainer, "train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._maybe(trainer, "validation")
