"""Value transforms of a ticket: sign-only (constant-magnitude) and random re-initialisation.

CLT (Brix et al. §4.3) keeps only the sign of each kept weight: every kept entry of layer l
becomes sign(w) * α_l with α_l = sqrt(6 / (fan_in + fan_out)), the bound of the Glorot/fan_avg
uniform initialiser that tensor2tensor uses. Zhou et al. (2019) use the layer's standard
deviation instead ("std"). The random-sign control draws the sign at random.

The random re-init control (Frankle & Carbin 2019) draws every tensor afresh from the
distribution *the model itself* was initialised with (:func:`initialiser_values`): a control
drawn from another distribution (Glorot for an embedding initialised N(0, d^-1/2), 4-6x smaller)
would test the initialiser, not the ticket.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from .masks import _name_seed
from .sharding import is_sharded, whole


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
        weight = whole(weight.detach())  # a DTensor shard: the whole tensor, as one process sees it
        alpha = _magnitude(weight, magnitude, name)
        if sign == "kept":
            signs = torch.where(weight < 0, -1.0, 1.0).to(weight.dtype)
        else:
            generator = torch.Generator().manual_seed(_name_seed(seed, name))
            signs = (torch.randint(0, 2, weight.shape, generator=generator) * 2 - 1).to(weight)
        value = signs * alpha
        if masks is not None and name in masks:
            value = torch.where(whole(masks[name]).to(weight.device), value, torch.zeros((), dtype=weight.dtype))
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


MODEL_INITIALISERS = ("reset_parameters", "_reset_parameters", "_init_weights")


def initialiser_values(module: nn.Module, names: list[str], seed: int = 0) -> tuple[dict[str, Tensor], str]:
    """Fresh values of the named parameters, drawn by the model's own initialiser.

    Each tensor is drawn by the outermost module above it that has an initialiser:
    ``reset_parameters`` (ours, every ``torch.nn`` layer), ``_reset_parameters``
    (``nn.Transformer``, ``nn.MultiheadAttention``) or ``_init_weights`` (Hugging Face models,
    applied to every sub-module). So a whole model with one initialiser is drawn by it, and a
    model assembled from layers (``nn.Transformer`` beside an embedding) by each part's own; a
    tensor with no initialiser above it gets Glorot/fan_avg uniform (:func:`random_init_values`).
    Each initialiser runs once, on a CPU copy, under a forked RNG seeded by (``seed``, its
    module's name): the model and the global RNG are untouched, and every rank and device draws
    the same values.

    Returns:
        the new values (on each parameter's device and dtype) and a one-line account of where
        they came from, for the log.
    """
    params = dict(module.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(f"initialiser_values: {type(module).__name__} has no parameters {unknown[:5]}")
    groups: dict[tuple[str, str], list[str]] = {}
    values, hows = {}, set()
    for name in names:
        owner = _initialiser_above(module, name)
        if owner is not None:
            groups.setdefault(owner, []).append(name)
        elif params[name].dim() >= 2:
            values[name] = random_init_values({name: params[name].detach()}, seed)[name]
            hows.add("Glorot uniform (no initialiser found)")
        else:
            layer = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            raise ValueError(f"no initialiser found for {name!r} ({tuple(params[name].shape)}): its module "
                             f"{type(layer).__name__} has no reset_parameters; exclude it from the re-init")
    for (prefix, hook), members in groups.items():
        owner = module.get_submodule(prefix) if prefix else module
        fresh = _run_initialiser(owner, hook, _name_seed(seed, prefix) if prefix else seed)
        values.update({n: fresh[n[len(prefix) + 1:] if prefix else n] for n in members})
        hows.add(f"{type(owner).__name__}.{hook}")
    how = ", ".join(sorted(hows))
    unchanged = [n for n in names if params[n].dim() >= 2 and torch.equal(values[n].cpu(), whole(params[n].detach()).cpu())]
    if unchanged:
        warnings.warn(f"the model's initialiser ({how}) left {unchanged[:5]} unchanged; drawing them from Glorot uniform")
        values.update(random_init_values({n: params[n].detach() for n in unchanged}, seed))
    return {n: values[n].to(dtype=params[n].dtype, device=params[n].device) for n in names}, how


def _plain_copy(module: nn.Module) -> nn.Module:
    """A CPU copy of ``module`` to run its initialiser on. An FSDP2 module refuses ``deepcopy``, so
    a sharded one is rebuilt as its own class around whole tensors (hooks and FSDP state left
    out: an initialiser only writes parameters); the draw is then the one a single process makes."""
    if not any(is_sharded(p) for p in module.parameters()):
        return copy.deepcopy(module).cpu()
    cls = type(module)
    plain_cls = next((base for base in cls.__bases__ if base.__name__ != "FSDPModule"), cls) \
        if cls.__name__.startswith("FSDP") else cls
    clone = plain_cls.__new__(plain_cls)
    clone.__dict__.update({k: v for k, v in module.__dict__.items() if "fsdp" not in k.lower()} | {
        "_buffers": {n: None if b is None else whole(b).detach().cpu().clone()
                                                   for n, b in module._buffers.items()},
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set), "_parameters": {
            n: None if p is None else nn.Parameter(whole(p.detach()).cpu().clone(), requires_grad=p.requires_grad)
            for n, p in module._parameters.items()},
        "_modules": {n: None if m is None else _plain_copy(m) for n, m in module._modules.items()}})
    for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                 "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                 "_load_state_dict_post_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
                 "_forward_hooks_always_called"):
        clone.__dict__[name] = type(module.__dict__.get(name, {}))()
    return clone


def _initialiser_above(module: nn.Module, name: str) -> tuple[str, str] | None:
    """(module prefix, hook) of the outermost module above parameter ``name`` with an initialiser."""
    parts = name.split(".")[:-1]
    for depth in range(len(parts) + 1):
        prefix = ".".join(parts[:depth])
        sub = module.get_submodule(prefix) if prefix else module
        for hook in MODEL_INITIALISERS:
            if callable(getattr(sub, hook, None)):
                return prefix, hook
    return None


@torch.no_grad()
def _run_initialiser(module: nn.Module, hook: str, seed: int) -> dict[str, Tensor]:
    clone = _plain_copy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hook == "_init_weights":
            clone.apply(clone._init_weights)
        else:
            getattr(clone, hook)()
    return {n: p.detach() for n, p in clone.named_parameters()}
