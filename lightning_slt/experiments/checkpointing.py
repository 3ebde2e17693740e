"""Checkpoint selection for pruned runs: the best only among checkpoints at the final sparsity."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from typing_extensions import override


class BestAfterStep(ModelCheckpoint):
    """``ModelCheckpoint`` that ignores validations before ``after_step`` for its top-k.

    The paper picks the best checkpoint by dev BLEU, and for MP "only the last 4 checkpoints,
    as earlier checkpoints do not have the targeted sparsity" (§2): with ``after_step`` set to
    the end of the MP ramp, a less sparse early checkpoint can never be reported.

    Args:
        after_step: first global step whose validation may become the best checkpoint.
        **kwargs: any ``ModelCheckpoint`` argument.
    """

    def __init__(self, after_step: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.after_step = after_step

    @override
    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        if trainer.global_step >= self.after_step:
            super()._save_topk_checkpoint(trainer, monitor_candidates)
