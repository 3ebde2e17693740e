"""Masks and values of sharded parameters (FSDP2's ``DTensor``): computed whole, held as shards.

Under FSDP2 (``fully_shard``) every parameter is a ``DTensor`` and each rank holds one shard.
Masks must be exactly those one process computes for the same weights (exact counts over the
whole tensor, the same tie-break by global index), so the pruning math runs on whole tensors
(:func:`whole`, one all-gather per tensor) and its results go back into the parameter's layout
(:func:`like`): each rank keeps the shard of the mask that matches its shard of the weight, cut
from the same whole tensor on every rank, with no communication. Plain tensors pass through.
"""

from __future__ import annotations

from torch import Tensor

try:
    from torch.distributed.tensor import DTensor, distribute_tensor
except ImportError:  # a torch built without distributed support: nothing is ever sharded
    DTensor = None  # type: ignore[assignment,misc]


def is_sharded(tensor: Tensor) -> bool:
    return DTensor is not None and isinstance(tensor, DTensor)


def whole(tensor: Tensor) -> Tensor:
    """The whole tensor on this rank (a ``DTensor`` is gathered; a plain tensor is returned as is)."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def like(value: Tensor, param: Tensor) -> Tensor:
    """``value`` (a whole tensor of ``param``'s shape, the same on every rank) in ``param``'s layout
    and device: for a ``DTensor`` parameter, this rank's shard of it."""
    if is_sharded(value) or not is_sharded(param):
        return value.to(param.device)
    return distribute_tensor(value.to(param.device), param.device_mesh, param.placements, src_data_rank=None)
