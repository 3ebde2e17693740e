"""Which tensors are pruned.

The paper prunes "only the matrices, not biases" (Brix et al. §3): every parameter with two or
more dimensions, which covers all linear weights, fused attention projections
(``nn.MultiheadAttention.in_proj_weight``) and the tied embedding/softmax matrix, and never
biases or LayerNorm gains. ``include`` / ``exclude`` glob patterns (``fnmatch`` syntax, matched
against the parameter's ``named_parameters`` name) override the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from torch import nn


def prunable_parameters(
    module: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """Return the parameters to prune, keyed by their ``named_parameters`` name, in module order.

    Args:
        module: any ``nn.Module``; tied parameters appear once, under their first name.
        include: glob patterns; when given, only matching names are candidates (any number of
            dimensions, so a user may choose to prune a bias on purpose).
        exclude: glob patterns removed from the candidates.

    Raises:
        ValueError: a pattern matches no parameter (a typo would otherwise silently prune
            nothing), or nothing is left to prune.
    """
    named = dict(module.named_parameters())
    for label, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns or ():
            if not any(fnmatchcase(name, pattern) for name in named):
                raise ValueError(
                    f"{label} pattern {pattern!r} matches no parameter of {type(module).__name__}; "
                    f"parameter names look like {_examples(named)}"
                )
    if include:
        chosen = {n: p for n, p in named.items() if any(fnmatchcase(n, pat) for pat in include)}
    else:
        chosen = {n: p for n, p in named.items() if p.dim() >= 2}
    if exclude:
        chosen = {n: p for n, p in chosen.items() if not any(fnmatchcase(n, pat) for pat in exclude)}
    if not chosen:
        raise ValueError(
            f"no prunable parameter left in {type(module).__name__} (include={include}, exclude={exclude})"
        )
    return chosen


def _examples(named: dict, count: int = 4) -> str:
    return ", ".join(repr(n) for n in list(named)[:count]) + (", ..." if len(named) > count else "")
