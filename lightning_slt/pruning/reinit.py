"""Value transforms of a ticket: sign-only (constant-magnitude) and random re-initialisation.

CLT (Brix et al. §4.3) keeps only the sign of each kept weight: every kept entry of layer l
becomes sign(w) * α_l with α_l = sqrt(6 / (fan_in + fan_out)), the bound of the Glorot/fan_avg
uniform initialiser that tensor2tensor uses. Zhou et al. (2019) use the layer's standard
deviation instead ("std"). The random-sign control draws the sign at random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from .masks import _name_seed


def fan_avg_bound(shape: torch.Size | tuple[int, ...]) -> float:
    """sqrt(6 / (fan_in + fan_out)) for a weight of shape (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(f"fan_in/fan_out need a tensor of >= 2 dims, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    return math.sqrt(6.0 / (fan_in + fan_out))


def sign_only_values(
    weights: Mapping[str, Tensor],
    masks: Mapping[str, Tensor] | None = None,
    magnitude: Literal["fan_avg", "std"] | float = "fan_avg",
    sign: Literal["kept", "random"] = "kept",
    seed: int = 0,
) -> dict[str, Tensor]:
    """New tensors with every kept entry set to ±α (pruned entries 0).

    Args:
        weights: the ticket's weights (e.g. θk), keyed by name.
        masks: kept entries; tensors without a mask are transformed everywhere.
        magnitude: "fan_avg" (paper), "std" (std of the tensor's weights, Zhou et al.) or a number.
        sign: "kept" uses sign(w) (an exact zero counts as +); "random" draws ±1 per entry from a
            generator seeded by (seed, name), the paper's random-sign control.
    """
    if sign not in ("kept", "random"):
        raise ValueError(f"sign must be 'kept' or 'random', got {sign!r}")
    out = {}
    for name, weight in weights.items():
        alpha = _magnitude(weight, magnitude, name)
        if sign == "kept":
            signs = torch.where(weight < 0, -1.0, 1.0).to(weight.dtype)
        else:
            generator = torch.Generator().manual_seed(_name_seed(seed, name))
            signs = (torch.randint(0, 2, weight.shape, generator=generator) * 2 - 1).to(weight)
        value = signs * alpha
        if masks is not None and name in masks:
            value = torch.where(masks[name].to(weight.device), value, torch.zeros((), dtype=weight.dtype))
        out[name] = value
    return out


def _magnitude(weight: Tensor, magnitude: str | float, name: str) -> float:
    if magnitude == "fan_avg":
        return fan_avg_bound(weight.shape)
    if magnitude == "std":
        return float(weight.float().std())
    if isinstance(magnitude, (int, float)) and not isinstance(magnitude, bool) and magnitude > 0:
        return float(magnitude)
    raise ValueError(f"magnitude must be 'fan_avg', 'std' or a positive number, got {magnitude!r} (tensor {name!r})")


def random_init_values(weights: Mapping[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """Fresh Glorot/fan_avg uniform draws U(-α, α) of each tensor's shape (random re-init control).

    Seeded per (seed, name) on CPU, so the draw is the same on every device and process.
    """
    out = {}
    for name, weight in weights.items():
        bound = fan_avg_bound(weight.shape)
        generator = torch.Generator().manual_seed(_name_seed(seed, name))
        draw = torch.rand(weight.shape, generator=generator, dtype=torch.float64) * 2 - 1
        out[name] = (draw * bound).to(dtype=weight.dtype, device=weight.device)
    return out
