"""Magnitude and random masks with exact counts.

A mask is a bool tensor of the weight's shape, True where the entry is kept, keyed by the
parameter's name. Sparsity ``s`` on ``n`` entries prunes exactly ``round(s * n)`` entries
(per tensor for ``scope="layerwise"``, the paper's choice; over all tensors together for
``scope="global"``). Ties are broken by flat index (lower index pruned first) so every process
and every device computes the same mask. Masks are nested: an entry pruned in ``current`` is
pruned again, whatever its value.

No mask may prune every entry of a tensor: a matrix with no kept weight cuts the path through
it, so a layerwise count ``round(s * n) == n`` (``0.999999`` on small matrices) is refused,
naming the tensor and the largest sparsity that keeps one entry. A global mask is refused when
its overall count takes every entry; when it empties single tensors it only warns, naming them,
because ranking all tensors together is what the user chose global for (the cure is then
layerwise scope, a lower sparsity, or ``exclude``).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from .sharding import whole

Scope = Literal["layerwise", "global"]
SCOPES = ("layerwise", "global")


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """Reject sparsities outside [0, 1): 1.0 would delete every weight of a tensor."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1) (0.9 = 90 % of weights pruned), got {sparsity!r}")
    return float(sparsity)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'layerwise' or 'global', got {scope!r}")
    return scope


def max_keeping_sparsity(n: int) -> float:
    """The largest sparsity (6 decimals, rounded down) whose count ``round(s * n)`` keeps one of ``n`` entries."""
    return math.floor((n - 1) / n * 1e6) / 1e6 if n > 1 else 0.0


def check_keeps_entries(sizes: Mapping[str, int], sparsity: float, scope: str = "layerwise",
                        what: str = "sparsity") -> None:
    """Refuse a sparsity whose exact count prunes every entry of a tensor (layerwise) or of all of them (global).

    ``sizes`` maps tensor names to entry counts. Call it before training with a schedule's final
    target (targets only rise) so a run is refused at setup, not when the ramp gets there.

    Raises:
        ValueError: naming the smallest emptied tensor (or the global count), its size, the
            sparsity and the largest sparsity that keeps at least one entry.
    """
    if scope == "global":
        total = sum(sizes.values())
        if total > 0 and round(sparsity * total) >= total:
            raise ValueError(
                f"{what} {sparsity} (scope='global') prunes all {total} entries of the {len(sizes)} selected tensors, "
                f"leaving the model no kept weight; use a sparsity of at most {max_keeping_sparsity(total)}")
        return
    emptied = sorted((n, name) for name, n in sizes.items() if n > 0 and round(sparsity * n) >= n)
    if emptied:
        n, name = emptied[0]
        others = f" (and {len(emptied) - 1} more tensors)" if len(emptied) > 1 else ""
        raise ValueError(
            f"{what} {sparsity} prunes all {n} entries of {name!r}{others} (round({sparsity} * {n}) = {n}), leaving it "
            f"no kept weight; use a sparsity of at most {max_keeping_sparsity(n)} ({n - 1} of {n} pruned), "
            "or exclude that tensor")


def warn_emptied(masks: Mapping[str, Tensor], why: str) -> None:
    """Warn, naming them, about tensors whose mask keeps no entry (global scope may do that)."""
    emptied = [f"{name!r} ({mask.numel()} entries)" for name, mask in masks.items() if mask.numel() and not mask.any()]
    if emptied:
        warnings.warn(
            f"{why} prunes every entry of {len(emptied)} tensor(s): {', '.join(emptied[:5])}; nothing passes through "
            "them any more. Use scope='layerwise', a lower sparsity, or exclude them", stacklevel=3)


def magnitude_masks(
    weights: Mapping[str, Tensor],
    sparsity: float,
    scope: Scope = "layerwise",
    current: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Keep the largest-magnitude entries; prune exactly ``round(sparsity * n)``.

    Args:
        weights: tensors to rank, keyed by name (e.g. the converged run's θT).
        sparsity: fraction of entries to prune, in [0, 1).
        scope: "layerwise" (one threshold per tensor) or "global" (one threshold overall).
        current: masks to nest in; entries pruned there stay pruned even if the target is lower.

    Raises:
        ValueError: bad sparsity or scope, non-finite weights, ``current`` not matching, or a
            count that would prune every entry of a tensor (see :func:`check_keeps_entries`).
    """
    check_sparsity(sparsity)
    check_scope(scope)
    scores = {}
    for name, weight in weights.items():
        weight = whole(weight)  # a DTensor shard: ranked over the whole tensor, as one process would
        if not torch.isfinite(weight).all():
            raise ValueError(f"weights of {name!r} contain NaN or infinite values; cannot rank them by magnitude")
        scores[name] = weight.detach().abs().float()
    return _masks_from_scores(scores, sparsity, scope, current)


def masks_from_zeros(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The mask a file without stored masks implies: for every floating tensor with >= 2 dims
    (the prunable ones), True where the value is not exactly 0.0.

    Pruned entries are exactly 0.0 (the pruning callbacks keep them so), and a trained weight is
    almost never exactly zero. Tensors without a zero get an all-True mask.
    """
    return {name: t != 0 for name, t in tensors.items() if t.dim() >= 2 and t.is_floating_point()}


def random_masks(
    weights: Mapping[str, Tensor],
    sparsity: float,
    scope: Scope = "layerwise",
    seed: int = 0,
    current: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Random masks with the same exact counts as :func:`magnitude_masks` (a control).

    Scores come from a CPU generator seeded by ``(seed, tensor name)``, so a tensor's mask does
    not depend on the device, the number of processes, or which other tensors are pruned.
    """
    check_sparsity(sparsity)
    check_scope(scope)
    scores = {}
    for name, weight in weights.items():
        generator = torch.Generator().manual_seed(_name_seed(seed, name))
        scores[name] = torch.rand(weight.shape, generator=generator).to(weight.device)
    return _masks_from_scores(scores, sparsity, scope, current)


def random_masks_like(reference: Mapping[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """Random masks pruning exactly as many entries per tensor as ``reference`` does.

    The random-mask control of a lottery round (Frankle & Carbin 2019; OpenLTH's random
    pruning): the draw is over the whole tensor, so it does not inherit the parent's zeros, and
    each tensor keeps the very count of the magnitude mask it is compared with, whatever the
    scope or nesting that produced that count. Seeded per (seed, tensor name) as :func:`random_masks`.
    A tensor the reference empties is emptied too (a faithful control), with the warning of
    :func:`warn_emptied`; layerwise references never empty one (:func:`magnitude_masks` refuses).
    """
    masks = {}
    for name, ref in reference.items():
        generator = torch.Generator().manual_seed(_name_seed(seed, name))
        score = torch.rand(ref.shape, generator=generator).to(ref.device)
        masks[name] = _keep_mask(score, int((~whole(ref).bool()).sum()))
    warn_emptied(masks, "the random control copies its reference's counts, and the reference")
    return masks


def _name_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def targets_below(previous: Mapping[str, Tensor], sparsity: float, scope: str = "layerwise") -> list[str]:
    """The tensors of ``previous`` that already prune more than ``sparsity`` would (masks are nested).

    Compared per tensor (for ``scope="global"`` overall: then all names or none) in entries, with
    one entry per tensor of slack: ``round(s * n)`` per tensor may land one entry either side of
    the parent's own count, so a target equal to the parent's is not below it.
    """
    check_sparsity(sparsity)
    pruned = {name: int((~whole(mask)).sum()) for name, mask in previous.items()}
    if scope == "global":
        total = sum(mask.numel() for mask in previous.values())
        return list(previous) if round(sparsity * total) < sum(pruned.values()) - len(pruned) else []
    return [name for name, mask in previous.items() if round(sparsity * mask.numel()) < pruned[name] - 1]


def check_nested_target(previous: Mapping[str, Tensor], sparsity: float, scope: str = "layerwise",
                        what: str = "the source") -> None:
    """Refuse a target below what ``previous`` already prunes in any tensor (see :func:`targets_below`)."""
    below = targets_below(previous, sparsity, scope)
    if not below:
        return
    if scope == "global":
        total = sum(mask.numel() for mask in previous.values())
        pruned = sum(int((~mask).sum()) for mask in previous.values())
        raise ValueError(
            f"sparsity {sparsity} is below the {pruned / max(total, 1):.4f} of {what} (already "
            "pruned overall); masks are nested, so targets must increase from run to run (an equal target keeps the mask)"
        )
    name = below[0]
    mask = previous[name]
    raise ValueError(
        f"sparsity {sparsity} is below the {int((~mask).sum()) / mask.numel():.4f} of {what} in {name!r} (already "
        f"pruned there); masks are nested, so targets must increase from run to run (an equal target keeps the mask)"
    )


def _masks_from_scores(
    scores: dict[str, Tensor], sparsity: float, scope: str, current: Mapping[str, Tensor] | None
) -> dict[str, Tensor]:
    if current is not None:
        current = {name: whole(mask) for name, mask in current.items()}
        check_masks(current, scores, allow_subset=True)
        for name, mask in current.items():
            if name in scores:
                # Already-pruned entries rank below every real score, so they are pruned first.
                scores[name] = scores[name].masked_fill(~mask.to(scores[name].device), -1.0)
    check_keeps_entries({name: score.numel() for name, score in scores.items()}, sparsity, scope)
    if scope == "layerwise":
        return {name: _keep_mask(score, _prune_count(score, sparsity, current, name)) for name, score in scores.items()}
    flat = torch.cat([s.flatten().cpu() for s in scores.values()]) if scores else torch.empty(0)
    already = sum(int((~current[n]).sum()) for n in scores if current is not None and n in current)
    keep = _keep_mask(flat, max(round(sparsity * flat.numel()), already))
    masks, offset = {}, 0
    for name, score in scores.items():
        masks[name] = keep[offset : offset + score.numel()].view(score.shape).to(score.device)
        offset += score.numel()
    warn_emptied(masks, f"global sparsity {sparsity}")
    return masks


def _prune_count(score: Tensor, sparsity: float, current: Mapping[str, Tensor] | None, name: str) -> int:
    target = round(sparsity * score.numel())
    if current is not None and name in current:
        already = int((~current[name]).sum())
        if score.numel() and already >= score.numel():
            raise ValueError(f"the mask to nest in already prunes all {already} entries of {name!r}; a tensor with no "
                             "kept weight cannot be pruned further: start from a mask that keeps some of it, or exclude it")
        target = max(target, already)
    return target


def _keep_mask(score: Tensor, prune: int) -> Tensor:
    """Prune the ``prune`` lowest scores; among equal scores the lower flat index goes first."""
    flat = score.flatten()
    keep = torch.ones_like(flat, dtype=torch.bool)
    if prune <= 0:
        return keep.view(score.shape)
    if prune >= flat.numel():
        return keep.logical_not_().view(score.shape)
    threshold = flat.kthvalue(prune).values
    below = flat < threshold
    tied = (flat == threshold).nonzero().flatten()
    keep[below] = False
    keep[tied[: prune - int(below.sum())]] = False
    return keep.view(score.shape)


class Masks(dict):
    """Bool masks (True = kept) keyed by parameter name, checked once, when built, against the
    parameters they mask: known names, equal shapes, bool dtype (as OpenLTH's ``Mask`` type).

    Why a type: masks pass from a callback's setup to the session and its optimizer hooks; code
    that receives a ``Masks`` (``ParameterMasks.set_masks_``) trusts it instead of checking again.
    A plain dict is still accepted there, and checked on arrival.

    Raises:
        ValueError: as :func:`check_masks`, naming the tensor.
    """

    def __init__(self, masks: Mapping[str, Tensor], params: Mapping[str, Tensor], source: str = "mask") -> None:
        check_masks(masks, params, allow_subset=True, source=source)
        super().__init__(masks)


def check_masks(
    masks: Mapping[str, Tensor], weights: Mapping[str, Tensor], allow_subset: bool = False, source: str = "mask"
) -> None:
    """Check mask names, shapes and dtype against the weights, naming the offending tensor."""
    unknown = [n for n in masks if n not in weights]
    if unknown:
        raise ValueError(
            f"{source} has tensors the model does not have: {unknown[:5]}; model tensors look like {list(weights)[:3]}"
        )
    if not allow_subset:
        missing = [n for n in weights if n not in masks]
        if missing:
            raise ValueError(f"{source} lacks tensors the model prunes: {missing[:5]}")
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(weights[name].shape):
            raise ValueError(
                f"{source} tensor {name!r} has shape {tuple(mask.shape)}, the model's has {tuple(weights[name].shape)}"
            )
        if mask.dtype != torch.bool:
            raise ValueError(f"{source} tensor {name!r} must be bool (True = kept), got {mask.dtype}")
