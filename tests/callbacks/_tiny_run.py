"""A pruned tiny training run as its own process, so a test can SIGKILL it mid-run.

Usage: python -m tests.callbacks._tiny_run OUT_DIR [--kill-at STEP] [--resume]
Writes OUT_DIR/final.pt (weights and masks) when it finishes.
"""

import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_slt import GradualMagnitudePruning, WeightRewind
from lightning_slt.callbacks import session_of
from tests.callbacks.tiny import fresh_module, make_trainer


class KillAt(pl.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    out = Path(argv[0])
    kill_at = int(argv[argv.index("--kill-at") + 1]) if "--kill-at" in argv else None
    ckpt_dir = out / "ckpt"
    callbacks = [
        GradualMagnitudePruning(0.8, begin_step=0, end_step=16, frequency=4),
        WeightRewind(step=3),
        ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=1, save_top_k=0),
    ]
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    # one batch per epoch: Lightning replays a resumed epoch from its first batch, and the
    # DataModule's own resume is tested with the real data pipeline; here the callbacks' state is.
    module = fresh_module(0, n_examples=8, batch_size=8)
    trainer = make_trainer(24, callbacks, enable_checkpointing=True)
    resume = str(ckpt_dir / "last.ckpt") if "--resume" in argv else None
    trainer.fit(module, ckpt_path=resume)
    masks = session_of(trainer).masks.state_dict()
    torch.save({"weights": {n: p.detach() for n, p in module.named_parameters()}, "masks": masks,
                "theta3": callbacks[1].snapshot}, out / "final.pt")


if __name__ == "__main__":
    main(sys.argv[1:])
