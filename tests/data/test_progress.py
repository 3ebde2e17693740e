"""Exact mid-epoch resume: a run killed after a checkpoint and resumed from it trains on exactly
the batches an uninterrupted run trains on, in the same order (Lightning 2.6 itself would
replay the interrupted epoch from its first batch)."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

MAX_EPOCHS = 2


class BatchRecorder(pl.LightningModule):
    """Trivial model that records (epoch, example indices) of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, tuple[int, ...]]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append((self.current_epoch, tuple(batch["index"].tolist())))
        return self.weight * batch["src"].float().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["batches_seen"] = len(self.seen)  # how many batches the checkpoint covers


class SimulatedCrash(RuntimeError):
    pass


class CrashAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"killed at step {self.step}")


def _fit(data, tmp_path, accumulate: int, callbacks: list, ckpt_path=None) -> BatchRecorder:
    model = BatchRecorder()
    trainer = pl.Trainer(
        max_epochs=MAX_EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accumulate_grad_batches=accumulate,
        use_distributed_sampler=False,
        default_root_dir=tmp_path,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize(
    ("save_step", "accumulate", "workers"),
    [
        (7, 1, 0),  # mid-epoch 0
        (32, 1, 0),  # exactly at the end of epoch 0 (32 batches per epoch): epoch 1 starts fresh
        (21, 2, 0),  # mid-epoch 1 with gradient accumulation (16 steps per epoch)
        (40, 1, 2),  # mid-epoch 1 with two DataLoader workers
    ],
)
def test_killed_and_resumed_run_sees_the_same_batches(make_data, tmp_path, save_step, accumulate, workers):
    options = dict(train_subset=300, max_tokens=256, num_workers=workers, seed=5)
    assert len(make_data(**options).train_dataloader()) == 32

    reference = _fit(make_data(**options), tmp_path / "reference", accumulate, callbacks=[])
    assert len(reference.seen) == MAX_EPOCHS * 32
    assert [epoch for epoch, _ in reference.seen] == [0] * 32 + [1] * 32
    epoch_orders = [[batch for epoch, batch in reference.seen if epoch == e] for e in range(MAX_EPOCHS)]
    assert epoch_orders[0] != epoch_orders[1]  # Lightning's set_epoch reached the sampler

    checkpoints = tmp_path / "checkpoints"
    saver = ModelCheckpoint(dirpath=checkpoints, filename="{step}", every_n_train_steps=save_step, save_top_k=-1)
    with pytest.raises(SimulatedCrash):
        _fit(make_data(**options), tmp_path / "killed", accumulate, callbacks=[saver, CrashAtStep(save_step + 3)])
    checkpoint_path = checkpoints / f"step={save_step}.ckpt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    done = checkpoint["batches_seen"]
    assert done == save_step * accumulate
    assert checkpoint["TranslationDataModule"] == {
        "epoch": done // 32 if done % 32 else done // 32 - 1,
        "batches_done": done % 32 or 32,
        "epoch_batches": 32,
        "sampler_batches": 32,
    }

    resumed = _fit(make_data(**options), tmp_path / "resumed", accumulate, callbacks=[], ckpt_path=checkpoint_path)
    assert resumed.seen == reference.seen[done:]
