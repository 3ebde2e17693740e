"""pruning.sharding: whole tensors from DTensor shards and back, on a 2-process gloo world (and plain
tensors passed through). Masks cut with ``like`` are each rank's slice of the same whole mask."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_slt.pruning.sharding import is_sharded, like, whole


def test_plain_tensors_pass_through_unchanged():
    t = torch.arange(6.0).reshape(2, 3)
    assert not is_sharded(t) and whole(t) is t
    mask = torch.tensor([[True, False, True], [False, True, True]])
    assert torch.equal(like(mask, t), mask) and like(mask, t).dtype == torch.bool


def _join(rank: int, port: int):
    """This process as rank ``rank`` of a 2-process gloo world; its 1-d CPU device mesh."""
    from torch.distributed.device_mesh import init_device_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    return init_device_mesh("cpu", (2,))


def _leave() -> None:
    dist.barrier()  # both ranks done with their collectives (and rank 0's file written)
    os._exit(0)  # no gloo teardown at interpreter exit, which can abort a rank (pytorch#179291)


def _rank(rank: int, port: int, out: str) -> None:
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = _join(rank, port)
    weight = distribute_tensor(torch.arange(12.0).reshape(4, 3), mesh, [Shard(0)])
    mask = torch.arange(12).reshape(4, 3) % 5 != 0
    sharded = like(mask, weight)
    result = {
        "sharded": is_sharded(weight) and is_sharded(sharded),
        "local_weight": weight.to_local().clone(), "local_mask": sharded.to_local().clone(),
        "whole_weight": whole(weight).clone(), "whole_mask": whole(sharded).clone(),
        "same_placements": sharded.placements == weight.placements,
    }
    torch.save(result, f"{out}/rank{rank}.pt")
    _leave()


def test_like_cuts_each_ranks_shard_of_the_whole_mask_and_whole_gathers_it_back(tmp_path):
    mp.spawn(_rank, args=(29517, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    full_weight = torch.arange(12.0).reshape(4, 3)
    full_mask = torch.arange(12).reshape(4, 3) % 5 != 0
    for rank, got in enumerate(ranks):
        assert got["sharded"] and got["same_placements"]
        assert torch.equal(got["local_weight"], full_weight[2 * rank:2 * rank + 2])  # Shard(0): rows split in two
        assert torch.equal(got["local_mask"], full_mask[2 * rank:2 * rank + 2])
        assert torch.equal(got["whole_weight"], full_weight) and torch.equal(got["whole_mask"], full_mask)


def _plain_fully_shard_world(rank: int, port: int, out: str) -> None:
    """No Lightning: fully_shard each Linear and the net, our ParameterMasks on the DTensor parameters,
    a global-scope magnitude mask, two Adam steps with the gradients masked before each step."""
    from torch import nn
    from torch.distributed.fsdp import fully_shard

    from lightning_slt.pruning import ParameterMasks, magnitude_masks, prunable_parameters

    mesh = _join(rank, port)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    whole_before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for layer in (net[0], net[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(net, mesh=mesh)
    params = prunable_parameters(net)
    masks = ParameterMasks(dict(net.named_parameters()))
    masks.set_masks_(magnitude_masks(params, 0.75, scope="global"))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    masks.attach(optimizer)
    g = torch.Generator().manual_seed(rank)
    for _ in range(2):
        net(torch.randn(4, 16, generator=g)).pow(2).mean().backward()
        masks.mask_gradients_()
        optimizer.step()
        optimizer.zero_grad()
    result = {"sharded": masks.sharded, "whole_before": whole_before, "masks": masks.state_dict(),
              "weights": {n: whole(p.detach()).clone() for n, p in net.named_parameters()}}
    torch.save(result, f"{out}/plain{rank}.pt")
    _leave()


def test_a_plain_fully_shard_world_keeps_exact_global_masks_and_zeros(tmp_path):
    from lightning_slt.pruning import magnitude_masks

    mp.spawn(_plain_fully_shard_world, args=(29519, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"plain{r}.pt", weights_only=True) for r in range(2)]
    first = ranks[0]
    matrices = ("0.weight", "2.weight")
    expected = magnitude_masks({n: first["whole_before"][n] for n in matrices}, 0.75, scope="global")
    assert first["sharded"] and sum(int((~m).sum()) for m in first["masks"].values()) == round(0.75 * (16 * 32 + 32 * 8))
    for got in ranks:  # every rank holds the one-process global mask, and pruned weights stayed 0.0
        assert all(torch.equal(got["masks"][n], expected[n]) for n in matrices)
        assert all(int(got["weights"][n][~expected[n]].count_nonzero()) == 0 for n in matrices)
