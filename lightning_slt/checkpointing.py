"""Checkpoint files of pruned runs: whole-or-absent writes, readable errors, best-at-final-sparsity.

``AtomicCheckpointIO`` exists because Lightning's own writer is atomic only by luck of the file
system: it writes the checkpoint to a temporary file in ``$TMPDIR`` and moves it into place, and
when ``$TMPDIR`` lives on another file system (a tmpfs ``/tmp``, as on many clusters) that move
is a copy, so a kill mid-copy leaves half a ``last.ckpt`` that the next resume trusts. The CLI
and the experiment runner install it (``lightning_slt.launch``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import override

from lightning_slt._lightning import TORCH_CHECKPOINT_IOS, CheckpointIOBase, ModelCheckpoint, pl, rank_zero_warn
from lightning_slt.artifacts import read_checkpoint
from lightning_slt.atomic import write_torch

class AtomicCheckpointIO(CheckpointIOBase):
    """``TorchCheckpointIO`` whose files appear whole or not at all, and whose load errors say what to do.

    Saving writes a temporary file beside the target, fsyncs it and renames it over the target
    (``os.replace``, atomic on POSIX), so a kill at any moment leaves either the previous
    checkpoint or the new one. Remote paths (``s3://`` ...) keep Lightning's fsspec writer.
    Loading reports a missing, truncated or corrupt file by name (``read_checkpoint``).

    Example::

        Trainer(plugins=[AtomicCheckpointIO()])
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        write_torch(Path(path), checkpoint)

    @override
    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        weights_only = True if weights_only is None else weights_only  # a pickled payload never runs
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)


def use_atomic_checkpoints(trainer: pl.Trainer) -> None:
    """Give ``trainer`` an ``AtomicCheckpointIO`` unless it was configured with another checkpoint IO."""
    if type(trainer.strategy.checkpoint_io) in TORCH_CHECKPOINT_IOS:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


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
    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse a metric the module does not log before the first training step, not at the first
        validation after it (Lightning's own check)."""
        logged = trainer.callback_metrics
        if self.monitor and logged and self.monitor not in logged:
            raise ValueError(
                f"BestAfterStep(monitor={self.monitor!r}): {type(pl_module).__name__} logs no {self.monitor!r} in "
                f"validation; it logs {sorted(logged)}: set the monitored metric to one of them (an experiment's "
                "`monitor:` and `mode:`)"
            )

    @override
    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        if trainer.global_step >= self.after_step:
            super()._save_topk_checkpoint(trainer, monitor_candidates)


def warn_best_may_precede(trainer: pl.Trainer, step: int, who: str, why: str) -> None:
    """Warn when every best-by-metric checkpoint of ``trainer`` may keep a validation from before ``step``.

    ``who`` asks (e.g. "GradualMagnitudePruning"); ``why`` says what is not yet true before that
    step (e.g. "sparsity is still below 0.9"); ``BestAfterStep(after_step=step)`` is the fix it names.
    """
    ranked = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor
              and cb.save_top_k != 0]
    if ranked and not any(isinstance(cb, BestAfterStep) and cb.after_step >= step for cb in ranked):
        names = ", ".join(f"{type(cb).__name__}(monitor={cb.monitor!r}, after_step={getattr(cb, 'after_step', 0)})"
                          for cb in ranked)
        rank_zero_warn(f"{who}: {names} may keep a best checkpoint from before step {step}, where {why}; to report "
                       f"the best one after it use lightning_slt.checkpointing.BestAfterStep(after_step={step}, monitor=...)")
