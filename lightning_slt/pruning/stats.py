"""Statistics of masks and tickets: sparsity per tensor and overall, overlap, sign agreement."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .sharding import whole


def sparsity_report(masks: Mapping[str, Tensor], total_parameters: int | None = None) -> dict:
    """Pruned fractions, keyed like the masks, plus totals.

    Returns a dict with ``per_tensor`` ({name: sparsity}), ``global`` (pruned / prunable),
    ``pruned``, ``prunable`` and ``remaining`` (parameters left, counting unpruned tensors when
    ``total_parameters`` is given).
    """
    per_tensor, pruned, prunable = {}, 0, 0
    for name, mask in masks.items():
        n, kept = mask.numel(), int(whole(mask).sum())
        per_tensor[name] = (n - kept) / n if n else 0.0
        pruned += n - kept
        prunable += n
    total = prunable if total_parameters is None else total_parameters
    return {
        "per_tensor": per_tensor,
        "global": pruned / prunable if prunable else 0.0,
        "pruned": pruned,
        "prunable": prunable,
        "remaining": total - pruned,
    }


def mask_jaccard(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """|kept(a) ∩ kept(b)| / |kept(a) ∪ kept(b)| over the tensors both masks cover (1.0 if identical)."""
    inter = union = 0
    for name in [n for n in a if n in b]:  # in a's order, the same on every rank (whole() may gather)
        x = whole(a[name])
        y = whole(b[name]).to(x.device)
        inter += int((x & y).sum())
        union += int((x | y).sum())
    return inter / union if union else 1.0


def sign_agreement(
    weights: Mapping[str, Tensor], reference: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None = None
) -> float:
    """Fraction of kept entries whose sign equals the reference's (e.g. θT against θk)."""
    agree = count = 0
    for name in [n for n in weights if n in reference]:  # in one order on every rank (whole() may gather)
        w = whole(weights[name].detach())
        r = whole(reference[name].detach()).to(w.device)
        keep = whole(masks[name]).to(w.device) if masks is not None and name in masks else torch.ones_like(w, dtype=torch.bool)
        agree += int(((torch.sign(w) == torch.sign(r)) & keep).sum())
        count += int(keep.sum())
    return agree / count if count else 1.0


def kept_zeros(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> tuple[int, int]:
    """(kept entries, kept entries that are exactly 0) over the masked tensors.

    A ticket whose kept weights start at 0 is a weaker ticket than its sparsity says (a random
    mask applied to a pruned parent's θk keeps the parent's zeros); the controls must score 0.
    """
    kept = zero = 0
    for name, mask in masks.items():
        weight = whole(weights[name].detach())
        keep = whole(mask).to(weight.device)
        kept += int(keep.sum())
        zero += int(((weight == 0) & keep).sum())
    return kept, zero
