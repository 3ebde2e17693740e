"""Under Lightning DDP (2 CPU processes, ddp_spawn) every rank holds identical masks."""

import hashlib
from pathlib import Path

import pytorch_lightning as pl
import torch

from lightning_slt import GradualMagnitudePruning, RandomMask
from lightning_slt.callbacks import session_of

from .tiny import fresh_module, make_trainer


class MaskDigest(pl.Callback):
    """Writes each rank's mask digest and checks all ranks agree through the strategy."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer, pl_module):
        masks = session_of(trainer).masks.state_dict()
        digest = hashlib.sha256(b"".join(m.numpy().tobytes() for m in masks.values())).hexdigest()
        (self.out_dir / f"rank{trainer.global_rank}.txt").write_text(digest)
        gathered = trainer.strategy.all_gather(torch.tensor([int(digest[:12], 16)]))
        assert (gathered == gathered[0]).all(), f"ranks disagree on masks: {gathered.tolist()}"


def test_random_and_magnitude_masks_identical_on_both_ranks(tmp_path):
    module = fresh_module(0)
    callbacks = [RandomMask(0.3, seed=5), GradualMagnitudePruning(0.7, initial_sparsity=0.3, end_step=6, frequency=2),
                 MaskDigest(tmp_path)]
    trainer = make_trainer(8, callbacks, devices=2, strategy="ddp_spawn")
    trainer.fit(module)
    digests = {p.read_text() for p in tmp_path.glob("rank*.txt")}
    assert len(list(tmp_path.glob("rank*.txt"))) == 2 and len(digests) == 1
