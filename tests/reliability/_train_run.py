"""A real pruned training run in its own process, so a test can SIGKILL it at a chosen point.

Usage: python -m tests.reliability._train_run OUT DATA_ROOT SPM_CACHE [--resume] [--kill STEP:PHASE]

The run: the tiny ``TranslationModule`` (dropout on) on 96 Multi30k pairs (14 batches per epoch)
for ``MAX_STEPS`` steps, i.e. into its third epoch, with ``GradualMagnitudePruning`` (masks change
every 4 steps up to step 20), ``WeightRewind(step=6)`` (a snapshot taken mid-run), validation
every 9 steps, a checkpoint after every step (``OUT/ckpt/last.ckpt``, atomic) and a CSV log
flushed every step. ``--resume`` continues from ``last.ckpt``. ``--kill STEP:PHASE`` sends
SIGKILL to the process itself when ``trainer.global_step == STEP``:

- ``before_step``: at the start of the next batch;
- ``mid_step``: after that batch's backward pass, before its optimizer step;
- ``checkpoint_write``: halfway through writing the checkpoint of step STEP to disk.

A finished run writes ``OUT/final.pt``: weights, masks, the θ6 snapshot and the final metrics.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from lightning_slt import GradualMagnitudePruning, WeightRewind
from lightning_slt._runtime import configure_cpu
from lightning_slt.callbacks import session_of

from .tiny import make_data, make_module, make_trainer

MAX_STEPS = 36
PHASES = ("before_step", "mid_step", "checkpoint_write")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillSwitch(pl.Callback):
    """SIGKILLs this process at ``step`` in the given phase (see the module docstring)."""

    def __init__(self, step: int, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        self.step, self.phase = step, phase

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.phase == "before_step" and trainer.global_step == self.step:
            _die()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.phase == "mid_step" and trainer.global_step == self.step:
            _die()

    def on_train_batch_end(self, trainer, pl_module, *args):
        # Runs before ModelCheckpoint's hook (Lightning calls checkpoint callbacks last).
        if self.phase == "checkpoint_write" and trainer.global_step == self.step:
            torch.save = _half_save_then_die


_REAL_SAVE = torch.save


def _half_save_then_die(obj, handle, *args, **kwargs) -> None:
    """Stands in for ``torch.save``: writes the first half of the checkpoint's bytes, then dies."""
    buffer = io.BytesIO()
    _REAL_SAVE(obj, buffer)
    data = buffer.getvalue()
    handle.write(data[: len(data) // 2])
    handle.flush()
    os.fsync(handle.fileno())
    _die()


def main(argv: list[str]) -> None:
    configure_cpu()
    torch.set_num_threads(1)
    out, data_root, spm_cache = (Path(arg) for arg in argv[:3])
    callbacks: list[pl.Callback] = [
        GradualMagnitudePruning(0.7, end_step=20, frequency=4),
        WeightRewind(step=6),
        ModelCheckpoint(dirpath=out / "ckpt", save_last=True, every_n_train_steps=1, save_top_k=0),
    ]
    if "--kill" in argv:
        step, phase = argv[argv.index("--kill") + 1].split(":")
        callbacks.append(KillSwitch(int(step), phase))
    data = make_data(data_root, spm_cache)
    module = make_module(data, seed=0)
    trainer = make_trainer(
        out, max_steps=MAX_STEPS, callbacks=callbacks, enable_checkpointing=True, limit_val_batches=None,
        val_check_interval=9, check_val_every_n_epoch=None, log_every_n_steps=1,
        logger=CSVLogger(out, name="logs", flush_logs_every_n_steps=1),
    )
    resume = out / "ckpt" / "last.ckpt" if "--resume" in argv else None
    trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None)
    torch.save({
        "weights": {name: tensor.clone() for name, tensor in module.state_dict().items()},
        "masks": session_of(trainer).masks.state_dict(),
        "theta6": callbacks[1].snapshot,
        "metrics": {name: float(value) for name, value in trainer.callback_metrics.items()},
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
    }, out / "final.pt")


if __name__ == "__main__":
    main(sys.argv[1:])
