"""Checkpoint files of pruned runs: AtomicCheckpointIO writes whole files and reads weights only,
use_atomic_checkpoints installs it unless another IO was configured, BestAfterStep ignores
validations before its step."""

import os
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lightning_slt.checkpointing import AtomicCheckpointIO, BestAfterStep, use_atomic_checkpoints

from .callbacks.tiny import make_trainer


def test_save_and_load_round_trip_through_a_temporary_beside_the_target(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, tmp_path / "runs" / "last.ckpt")
    assert os.listdir(tmp_path / "runs") == ["last.ckpt"]
    loaded = io.load_checkpoint(tmp_path / "runs" / "last.ckpt")
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_storage_options_are_refused_and_a_missing_file_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"AtomicCheckpointIO.save_checkpoint takes no storage_options, got \{'a': 1\}"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})
    assert not (tmp_path / "x.ckpt").exists()
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*absent.ckpt' does not exist; check the path"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "absent.ckpt")


def test_installed_over_lightnings_own_io_but_not_over_a_configured_one():
    trainer = make_trainer(1, [])
    assert type(trainer.strategy.checkpoint_io) is TorchCheckpointIO
    use_atomic_checkpoints(trainer)
    assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO

    class OwnIO(TorchCheckpointIO):
        pass

    configured = make_trainer(1, [], plugins=[OwnIO()])
    use_atomic_checkpoints(configured)
    assert type(configured.strategy.checkpoint_io) is OwnIO


def test_best_after_step_ranks_only_validations_from_its_step_on(monkeypatch):
    ranked = []
    monkeypatch.setattr(ModelCheckpoint, "_save_topk_checkpoint",
                        lambda self, trainer, candidates: ranked.append(trainer.global_step))
    best = BestAfterStep(after_step=40, monitor="val/bleu", mode="max")
    assert (best.after_step, best.monitor, best.mode) == (40, "val/bleu", "max")
    for step in (20, 39, 40, 60):
        best._save_topk_checkpoint(SimpleNamespace(global_step=step), {})
    assert ranked == [40, 60]
    assert isinstance(BestAfterStep(), ModelCheckpoint) and BestAfterStep().after_step == 0
