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


MODEL_INITIALISERS = ("reset_parameters", "_reset_parameters", "_init_weights")


def initialiser_values(module: nn.Module, names: list[str], seed: int = 0) -> tuple[dict[str, Tensor], str]:
    """Fresh values of the named parameters, drawn by the model's own initialiser.

    The hook is found in this order: the outermost sub-module that holds every named tensor and
    has a model-level initialiser (``reset_parameters`` as ours, ``_reset_parameters`` as
    ``nn.Transformer``, ``_init_weights`` as Hugging Face models, applied to every sub-module);
    else, per tensor, the ``reset_parameters`` of the module that owns it (how a model built of
    ``torch.nn`` layers was initialised); else Glorot/fan_avg uniform (:func:`random_init_values`).
    The initialiser runs on a CPU copy under a forked RNG seeded with ``seed``: the model and the
    global RNG are untouched, and every rank and device draws the same values.

    Returns:
        the new values (on each parameter's device and dtype) and a one-line account of where
        they came from, for the log.
    """
    params = dict(module.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(f"initialiser_values: {type(module).__name__} has no parameters {unknown[:5]}")
    owner = _model_initialiser(module, names)
    if owner is not None:
        prefix, hook = owner
        fresh = _run_initialiser(module.get_submodule(prefix) if prefix else module, hook, seed)
        values = {n: fresh[n[len(prefix) + 1:] if prefix else n] for n in names}
        how = f"{type(module.get_submodule(prefix) if prefix else module).__name__}.{hook}"
    else:
        values, hows = {}, set()
        for i, name in enumerate(names):
            owner_name, _, attr = name.rpartition(".")
            layer = module.get_submodule(owner_name) if owner_name else module
            if callable(getattr(layer, "reset_parameters", None)):
                values[name] = _run_initialiser(layer, "reset_parameters", seed + i)[attr]
                hows.add(f"{type(layer).__name__}.reset_parameters")
            elif params[name].dim() >= 2:
                values[name] = random_init_values({name: params[name].detach()}, seed)[name]
                hows.add("Glorot uniform (no initialiser found)")
            else:
                raise ValueError(f"no initialiser found for {name!r} ({tuple(params[name].shape)}): its module "
                                 f"{type(layer).__name__} has no reset_parameters; exclude it from the re-init")
        how = ", ".join(sorted(hows))
    unchanged = [n for n in names if params[n].dim() >= 2 and torch.equal(values[n].cpu(), params[n].detach().cpu())]
    if unchanged:
        warnings.warn(f"the model's initialiser ({how}) left {unchanged[:5]} unchanged; drawing them from Glorot uniform")
        values.update(random_init_values({n: params[n].detach() for n in unchanged}, seed))
    return {n: values[n].to(dtype=params[n].dtype, device=params[n].device) for n in names}, how


def _model_initialiser(module: nn.Module, names: list[str]) -> tuple[str, str] | None:
    for prefix, sub in module.named_modules():
        if all(n.startswith(prefix + ".") for n in names) or not prefix:
            for hook in MODEL_INITIALISERS:
                if callable(getattr(sub, hook, None)) and not _is_torch_layer(sub):
                    return prefix, hook
    return None


def _is_torch_layer(module: nn.Module) -> bool:
    """A torch.nn leaf layer (Linear, Embedding...): its own reset is the per-tensor path.
    ``nn.Transformer`` and ``nn.MultiheadAttention`` are model-level initialisers."""
    return type(module).__module__.startswith("torch.nn") and not isinstance(
        module, (nn.Transformer, nn.MultiheadAttention))


@torch.no_grad()
def _run_initialiser(module: nn.Module, hook: str, seed: int) -> dict[str, Tensor]:
    clone = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hook == "_init_weights":
            clone.apply(clone._init_weights)
        else:
            getattr(clone, hook)()
    return {n: p.detach() for n, p in clone.named_parameters()}
