"""A tiny LightningModule with every kind of parameter the pruning code meets: an embedding,
linear weights and biases, a LayerNorm, and an LR scheduler. Deterministic data, one batch
shape, so runs are comparable bit for bit. Also: ``Probe`` (the ticket at the first batch, zeros
checked every step) and ``MaskDigest`` (every DDP rank's masks agree; named by class_path in
tests/experiments/test_runner.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


REPO_ROOT = Path(__file__).resolve().parents[2]


class TinyModule(pl.LightningModule):
    def __init__(self, lr: float = 0.01, n_examples: int = 32, batch_size: int = 8, compile: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(20, 8)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 20))
        # not registered as a submodule, so parameter and state_dict names stay "net.*"
        object.__setattr__(self, "forward_net", torch.compile(self.net, backend="aot_eager") if compile else self.net)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.forward_net(self.embed(x).mean(1)), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 20, (self.hparams.n_examples, 5), generator=g)
        y = torch.randint(0, 20, (self.hparams.n_examples,), generator=g)
        return DataLoader(TensorDataset(x, y), batch_size=self.hparams.batch_size, shuffle=False)


def make_trainer(max_steps: int, callbacks: list, **kwargs) -> pl.Trainer:
    options = dict(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def fresh_module(seed: int = 0, **kwargs) -> TinyModule:
    pl.seed_everything(seed, verbose=False)
    return TinyModule(**kwargs)


def params_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


class Probe(pl.Callback):
    """Records weights at the first batch (the assembled ticket) and checks zeros every step."""

    def __init__(self):
        self.start = None
        self.sparsity_at = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.start is None:
            self.start = params_of(pl_module)

    def on_train_batch_end(self, trainer, pl_module, *args):
        from lightning_slt.callbacks import session_of

        session = session_of(trainer)
        if session is None or session.masks is None:
            return
        for name, mask in session.masks.masks.items():
            pruned = session.masks.params[name][~mask]
            assert (pruned == 0).all(), f"pruned entry of {name} nonzero after step {trainer.global_step}"
        self.sparsity_at[trainer.global_step] = {n: int((~m).sum()) for n, m in session.masks.masks.items()}


class MaskDigest(pl.Callback):
    """Writes each rank's mask digest and checks all ranks agree through the strategy."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer, pl_module):
        from lightning_slt.callbacks import session_of

        masks = session_of(trainer).masks.state_dict()
        digest = hashlib.sha256(b"".join(m.numpy().tobytes() for m in masks.values())).hexdigest()
        (self.out_dir / f"rank{trainer.global_rank}.txt").write_text(digest)
        gathered = trainer.strategy.all_gather(torch.tensor([int(digest[:12], 16)]))
        assert (gathered == gathered[0]).all(), f"ranks disagree on masks: {gathered.tolist()}"
