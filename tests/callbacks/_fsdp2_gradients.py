"""transformer_cpu sharded by TranslationModule.shard on 2 gloo processes, both ranks given the same
batch: FSDP2's averaged gradient must equal one process's. Usage: python -m tests.callbacks._fsdp2_gradients OUT DATA_ROOT"""

from __future__ import annotations

import gc
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_slt import TranslationDataModule, TranslationModule
from lightning_slt.pruning.sharding import whole

NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


def batch_and_module(data_root: str, cache: str) -> tuple[dict, TranslationModule]:
    torch.manual_seed(0)
    data = TranslationDataModule(data_root=data_root, cache_dir=cache, vocab_size=400, train_subset=64, max_tokens=512)
    data.setup("fit")
    batch = {k: v for k, v in next(iter(data.train_dataloader())).items() if isinstance(v, torch.Tensor)}
    return batch, TranslationModule.from_preset("transformer_cpu", vocab_size=data.vocab_size, **NO_DROPOUT)


def gradients(module: TranslationModule, batch: dict) -> dict[str, torch.Tensor]:
    loss, _, _ = module._token_losses(batch)
    (loss.sum() / loss.numel()).backward()
    return {n: whole(p.grad).clone() for n, p in module.named_parameters()}


def rank(index: int, port: int, out: str, data_root: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=index, world_size=2)
    torch.set_num_threads(1)
    batch, module = batch_and_module(data_root, f"{out}/spm")
    module.shard(init_device_mesh("cpu", (2,)))
    sharded = gradients(module, batch)
    if index == 0:
        torch.save(sharded, f"{out}/sharded_grads.pt")
    del module, sharded  # FSDP2's state and its pending work objects go before the group (pytorch#179291)
    gc.collect()
    dist.barrier()  # both ranks done with their collectives (and rank 0's file written)
    os._exit(0)  # no gloo teardown at interpreter exit, which can abort a rank (pytorch#179291)


if __name__ == "__main__":
    out, data_root = sys.argv[1], sys.argv[2]
    mp.spawn(rank, args=(29613, out, data_root), nprocs=2)
    torch.set_num_threads(1)
    batch, module = batch_and_module(data_root, f"{out}/spm")
    torch.save(gradients(module, batch), f"{out}/one_process_grads.pt")
