"""Pruning callbacks under FSDP2: a 64-256-256-10 MLP, each Linear and the net ``fully_shard``-ed in
``configure_model``, trained by Lightning's ``ModelParallelStrategy`` on 2 CPU processes (gloo).

Usage: python -m tests.callbacks._fsdp2_run OUT_DIR SOURCE_CKPT
Runs three fits (GMP, an SLT round from SOURCE_CKPT, a random mask) and, on rank 0, saves what
each recorded, as whole tensors, to OUT_DIR/<name>.pt for the test to compare with one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from pytorch_lightning.strategies import ModelParallelStrategy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_slt import (ConvergedMask, GradualMagnitudePruning, RandomMask, RandomReinit, SignOnlyReinit,
                           SparsityMonitor, WeightRewind)
from lightning_slt.callbacks import session_of
from lightning_slt.pruning.sharding import is_sharded, whole


class MLP(LightningModule):
    def __init__(self, shard: bool = True, n_examples: int = 128) -> None:
        super().__init__()
        self.shard, self.n_examples = shard, n_examples
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def configure_model(self) -> None:
        if not self.shard:
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(self.net, mesh=mesh)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        n = self.n_examples
        data = TensorDataset(torch.randn(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g))
        return DataLoader(data, batch_size=8)


def whole_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: whole(p.detach()).clone() for n, p in module.named_parameters()}


class WeightsBeforePruning(Callback):
    """Placed before the pruning callbacks: the whole weights at each step's end, as GMP ranks them."""

    def __init__(self) -> None:
        self.before: dict[int, dict] = {}

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.before[trainer.global_step] = whole_state(pl_module)


class Recorder(Callback):
    """Placed after the pruning callbacks, records as whole tensors: the masks at each step's end,
    the ticket at the first step, the gradients of pruned entries as the optimizer gets them, and
    the Adam moments of pruned entries at the end."""

    def __init__(self) -> None:
        self.after: dict[int, dict] = {}
        self.ticket: dict | None = None
        self.pruned_grad_nonzero: list[int] = []
        self.sharded = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.ticket is None:
            self.ticket = {"weights": whole_state(pl_module), "masks": session_of(trainer).masks.state_dict()}
            self.sharded = all(is_sharded(p) for p in pl_module.parameters())

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after[trainer.global_step] = session_of(trainer).masks.state_dict()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        masks = session_of(trainer).masks
        self.pruned_grad_nonzero.append(sum(int((whole(masks.params[n].grad)[~whole(m)] != 0).sum())
                                            for n, m in masks.masks.items()))

    def on_train_end(self, trainer, pl_module):
        masks = session_of(trainer).masks
        optimizer = trainer.optimizers[0]
        self.moments_nonzero = sum(int((whole(optimizer.state[masks.params[n]]["exp_avg"])[~whole(m)] != 0).sum())
                                   for n, m in masks.masks.items())
        self.final = {"weights": whole_state(pl_module), "masks": masks.state_dict()}
        self.monitor = SparsityMonitor().compute(trainer, pl_module)  # on every rank: it gathers shards


class OptimizerAtStart(Callback):
    """The whole Adam first moments at the first step (after the ticket, and its optimizer state, are in place)."""

    exp_avg: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.exp_avg is None:
            optimizer = trainer.optimizers[0]
            moments = {n: whole(optimizer.state[p]["exp_avg"]).clone() for n, p in pl_module.named_parameters()}
            self.exp_avg = moments if trainer.is_global_zero else {}


class StopAt(Callback):
    """Stops the fit after ``step`` optimizer steps (the run is killed there, as far as it knows)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, *args):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def fit(callbacks: list, max_steps: int = 6, ckpt_path: str | None = None, save_to: str | None = None,
        n_examples: int = 128, distributed_checkpoint: bool = True) -> tuple[WeightsBeforePruning, Recorder] | None:
    """One fit on 2 processes; ``save_to``: a distributed checkpoint folder written at the end."""
    seed_everything(0, verbose=False)
    before, recorder = WeightsBeforePruning(), Recorder()
    trainer = Trainer(accelerator="cpu", devices=2, max_steps=max_steps, callbacks=[before, *callbacks, recorder],
                      strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1,
                                                     save_distributed_checkpoint=distributed_checkpoint), logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(MLP(n_examples=n_examples), ckpt_path=ckpt_path)
    if save_to is not None:
        trainer.save_checkpoint(save_to)
    return (before, recorder) if trainer.is_global_zero else None


def save(out: Path, name: str, recorded: tuple[WeightsBeforePruning, Recorder] | None) -> None:
    if recorded is not None:  # rank 0
        before, recorder = recorded
        torch.save({"before": before.before, "after": recorder.after, "ticket": recorder.ticket, "final": recorder.final,
                    "pruned_grad_nonzero": recorder.pruned_grad_nonzero, "moments_nonzero": recorder.moments_nonzero,
                    "sharded": recorder.sharded, "monitor": recorder.monitor}, out / f"{name}.pt")


def main(out: Path, source: str) -> None:
    save(out, "gmp", fit([GradualMagnitudePruning(0.8, end_step=4, frequency=2), SparsityMonitor(every_n_steps=2)]))
    save(out, "gmp_global", fit([GradualMagnitudePruning(0.8, end_step=4, frequency=2, scope="global")]))
    save(out, "slt", fit([ConvergedMask(source, sparsity=0.8), WeightRewind(step=2, source=source)]))
    save(out, "clt", fit([ConvergedMask(source, sparsity=0.8), WeightRewind(step=2, source=source), SignOnlyReinit()]))
    save(out, "random_mask", fit([RandomMask(0.8, seed=3)]))
    save(out, "random_reinit", fit([RandomMask(0.8, seed=3), RandomReinit(seed=1)]))
    # θ2 with the optimizer's state (OpenLTH's rewinding), recorded sharded, restored into a sharded run.
    fit([WeightRewind(step=2, restore_optimizer=True)], save_to=str(out / "with_optimizer.ckpt"))
    restored = OptimizerAtStart()
    fit([WeightRewind(step=2, source=str(out / "with_optimizer.ckpt"), restore_optimizer=True), restored])
    if restored.exp_avg:  # rank 0 only: the other rank holds {} and wrote over it when it finished last
        torch.save(restored.exp_avg, out / "restored_exp_avg.pt")
    # Kill-and-resume mid-ramp: stopped at step 8, a distributed checkpoint folder written, resumed
    # to step 12; against 12 steps uninterrupted. One batch per rank and epoch: Lightning replays a
    # resumed epoch from its first batch, so only a resume at an epoch's end can be compared exactly.
    def gmp_and_rewind() -> list:
        return [GradualMagnitudePruning(0.8, end_step=10, frequency=2), WeightRewind(step=2)]

    save(out, "uninterrupted", fit(gmp_and_rewind(), max_steps=12, n_examples=16))
    save(out, "stopped", fit([*gmp_and_rewind(), StopAt(8)], max_steps=12, save_to=str(out / "stopped.ckpt"),
                             n_examples=16))
    save(out, "resumed", fit(gmp_and_rewind(), max_steps=12, ckpt_path=str(out / "stopped.ckpt"), n_examples=16))
    # The same with a full consolidated checkpoint (one file, save_distributed_checkpoint=False).
    fit([*gmp_and_rewind(), StopAt(8)], max_steps=12, save_to=str(out / "stopped_full.ckpt"), n_examples=16,
        distributed_checkpoint=False)
    save(out, "resumed_full", fit(gmp_and_rewind(), max_steps=12, ckpt_path=str(out / "stopped_full.ckpt"),
                                  n_examples=16, distributed_checkpoint=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
