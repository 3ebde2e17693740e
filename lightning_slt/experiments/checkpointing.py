"""Checkpoint files of pruned runs: whole-or-absent writes, readable errors, best-at-final-sparsity.

``AtomicCheckpointIO`` exists because Lightning's own writer is atomic only by luck of the file
system: it writes the checkpoint to a temporary file in ``$TMPDIR`` and moves it into place, and
when ``$TMPDIR`` lives on another file system (a tmpfs ``/tmp``, as on many clusters) that move
is a copy, so a kill mid-copy leaves half a ``last.ckpt`` that the next resume trusts. The CLI
and the experiment runner install it (see ``lightning_slt.cli``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from typing_extensions import override

from lightning_slt.atomic import write_torch

_READ_ERRORS = (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool | None = None,
                    mmap: bool = False) -> Any:
    """``torch.load`` of a checkpoint file, with errors that name the file and the fix.

    Args:
        weights_only: as ``torch.load`` (None: torch's default, True since torch 2.6).
        mmap: map the file instead of reading it (cheap when only shapes are needed).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated, corrupt, not a torch file, or holds objects that
            ``weights_only`` loading refuses.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"checkpoint {os.fspath(path)!r} does not exist; check the path (ckpt_path), or leave ckpt_path unset "
            "to train from scratch"
        )
    try:
        checkpoint = _load(path, map_location, weights_only, mmap)
    except _READ_ERRORS as err:
        raise ValueError(
            f"cannot read checkpoint {os.fspath(path)!r}: it is truncated or corrupt, or not a torch checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Use another checkpoint (e.g. an earlier "
            "step's), or delete it to train that run again from its start"
        ) from err
    return checkpoint


def _load(path: str | os.PathLike, map_location: Any, weights_only: bool | None, mmap: bool) -> Any:
    if mmap and zipfile.is_zipfile(path):  # mmap needs the zip format; the legacy format is read whole
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=True)
    return torch.load(path, map_location=map_location, weights_only=weights_only)


class AtomicCheckpointIO(TorchCheckpointIO):
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
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)


def use_atomic_checkpoints(trainer: pl.Trainer) -> None:
    """Give ``trainer`` an ``AtomicCheckpointIO`` unless it was configured with another checkpoint IO."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
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
    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        if trainer.global_step >= self.after_step:
            super()._save_topk_checkpoint(trainer, monitor_candidates)
