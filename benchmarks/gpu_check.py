"""GPU readiness: the pruning callbacks on CUDA, in bf16, one GPU and (with several) DDP and FSDP2.

Prepared to run as it is on a machine with NVIDIA GPUs (no data needed: a synthetic MLP task).
On each engine: a dense run recording θ2, an SLT round from its checkpoint (80 % of every matrix
from θT, weights θ2 ⊙ m), a GMP run to 80 % at its ramp's end, and a GMP run stopped at step 8
and resumed from its checkpoint. Checks exact per-matrix counts, the ticket against the
one-process math on the CPU, pruned entries exactly 0, and the resumed masks equal to the
uninterrupted run's. Prints one JSON line per engine; without CUDA one line saying so (exit 0).

Usage: python benchmarks/gpu_check.py [OUT_DIR [one_gpu|ddp|fsdp2]]  (no engine: every one this machine has)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_slt import ConvergedMask, GradualMagnitudePruning, WeightRewind
from lightning_slt.callbacks import session_of
from lightning_slt.pruning import magnitude_masks
from lightning_slt.pruning.sharding import whole

MATRICES = ("net.0.weight", "net.2.weight", "net.4.weight")


class MLP(LightningModule):
    def __init__(self, shard: bool = False) -> None:
        super().__init__()
        self.shard = shard
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def configure_model(self) -> None:
        if self.shard:
            from torch.distributed.fsdp import fully_shard

            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer, mesh=self.device_mesh["data_parallel"])
            fully_shard(self.net, mesh=self.device_mesh["data_parallel"])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        n = 8 * self.trainer.world_size  # one batch per rank and epoch: a resumed epoch replays nothing
        return DataLoader(TensorDataset(torch.randn(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)),
                          batch_size=8)


class Final(Callback):
    def on_train_end(self, trainer, pl_module):
        self.masks = session_of(trainer).masks.state_dict()
        self.weights = {n: whole(p.detach()).float().cpu() for n, p in pl_module.named_parameters()}


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def fit(engine: dict, callbacks: list, max_steps: int, ckpt_path: str | None = None, save: Path | None = None) -> Final:
    seed_everything(0, verbose=False)
    final = Final()
    trainer = Trainer(accelerator="gpu", precision="bf16-mixed", max_steps=max_steps, callbacks=[*callbacks, final],
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      **engine["trainer"])
    trainer.fit(MLP(shard=engine["shard"]), ckpt_path=ckpt_path)
    if save is not None:
        trainer.save_checkpoint(save)
    final.is_global_zero = trainer.is_global_zero
    return final


def check(name: str, engine: dict, out: Path) -> dict:
    exact = lambda masks: all(int((~masks[n]).sum()) == round(0.8 * masks[n].numel()) for n in MATRICES)  # noqa: E731
    dense = fit(engine, [WeightRewind(step=2)], 6, save=out / f"{name}_dense.ckpt")
    source = str(out / f"{name}_dense.ckpt")
    slt = fit(engine, [ConvergedMask(source, sparsity=0.8), WeightRewind(step=2, source=source)], 6)
    gmp = fit(engine, [GradualMagnitudePruning(0.8, end_step=4, frequency=2)], 6)
    schedule = lambda: [GradualMagnitudePruning(0.8, end_step=10, frequency=2)]  # noqa: E731
    whole_run = fit(engine, schedule(), 12)
    fit(engine, [*schedule(), StopAt(8)], 12, save=out / f"{name}_stopped.ckpt")
    resumed = fit(engine, schedule(), 12, ckpt_path=str(out / f"{name}_stopped.ckpt"))
    if not dense.is_global_zero:
        return {}
    from lightning_slt.artifacts import load_source

    theta_t = load_source(source).weights
    expected = magnitude_masks({n: theta_t[n].float() for n in MATRICES}, 0.8)
    return {
        "engine": name, "devices": torch.cuda.device_count(), "gpu": torch.cuda.get_device_name(0),
        "slt_masks_exact_and_one_process": exact(slt.masks) and all(torch.equal(slt.masks[n], expected[n]) for n in MATRICES),
        "gmp_exact_80_percent": exact(gmp.masks),
        "pruned_entries_zero": all(int(r.weights[n][~r.masks[n]].count_nonzero()) == 0 for r in (slt, gmp) for n in MATRICES),
        "resumed_masks_equal_uninterrupted": all(torch.equal(whole_run.masks[n], resumed.masks[n]) for n in MATRICES),
        "resumed_weights_max_abs_diff": max(float((whole_run.weights[n] - resumed.weights[n]).abs().max())
                                            for n in whole_run.weights),
    }


def engines() -> dict[str, dict]:
    """One GPU always; DDP and FSDP2 (ModelParallelStrategy) over every GPU when there are several."""
    from pytorch_lightning.strategies import ModelParallelStrategy

    count = torch.cuda.device_count()
    found = {"one_gpu": {"trainer": {"devices": 1}, "shard": False}}
    if count >= 2:
        found["ddp"] = {"trainer": {"devices": count, "strategy": "ddp"}, "shard": False}
        found["fsdp2"] = {"trainer": {"devices": count, "strategy": ModelParallelStrategy(
            data_parallel_size=count, tensor_parallel_size=1)}, "shard": True}
    return found


def main(out: Path, engine: str | None) -> None:
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_check", "cuda": False, "skipped": "no CUDA device here"}))
        return
    if engine is None:  # each engine in a process of its own: DDP and FSDP2 re-launch the script per rank
        import subprocess

        for name in engines():
            subprocess.run([sys.executable, __file__, str(out), name], check=False)
        return
    result = check(engine, engines()[engine], out)
    if result:
        print(json.dumps({"benchmark": "gpu_check", **result}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="gpu_check_")),
         sys.argv[2] if len(sys.argv) > 2 else None)
