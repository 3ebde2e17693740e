"""Which tensors are pruned.

The paper prunes "only the matrices, not biases" (Brix et al. §3). By default that is every
*trainable* parameter with two or more dimensions, which covers all linear weights, fused
attention projections (``nn.MultiheadAttention.in_proj_weight``) and the tied embedding/softmax
matrix, and never biases or LayerNorm gains. Two kinds of >= 2-dim tensors are left out:

- frozen parameters (``requires_grad=False``), e.g. the sinusoidal position tables of Hugging
  Face Marian and Pegasus models: training cannot repair what pruning zeroes there, and they
  are not weights the lottery-ticket rule ranks;
- bias-like names whose last segment ends in ``bias`` or starts with ``bias_``
  (``nn.MultiheadAttention(add_bias_kv=True)``'s 3-dim ``bias_k`` / ``bias_v``,
  ``final_logits_bias``, ``in_proj_bias``): biases in any shape.

``include`` / ``exclude`` glob patterns (``fnmatch`` syntax, matched against the parameter's
``named_parameters`` name) override the default: ``include`` selects exactly the matching names,
frozen or bias-like ones too, so a user can prune them on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase

from torch import nn


def is_prunable(name: str, param: nn.Parameter) -> bool:
    """The default rule: a trainable matrix (>= 2 dims) whose name is not bias-like."""
    leaf = name.rsplit(".", 1)[-1]
    return param.dim() >= 2 and param.requires_grad and not (leaf.endswith("bias") or leaf.startswith("bias_"))


def prunable_parameters(
    module: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """Return the parameters to prune, keyed by their ``named_parameters`` name, in module order.

    Args:
        module: any ``nn.Module``; tied parameters appear once, under their first name.
        include: glob patterns; when given, only matching names are candidates (any number of
            dimensions, frozen or bias-like too, so a user may prune a bias on purpose).
            Without it, :func:`is_prunable` decides.
        exclude: glob patterns removed from the candidates.

    Raises:
        ValueError: a pattern matches no parameter (a typo would otherwise silently prune
            nothing), or nothing is left to prune.
    """
    return select_parameters(module, include, exclude, default=is_prunable, purpose="prunable")


def select_parameters(
    module: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    default: Callable[[str, nn.Parameter], bool] | None = None,
    purpose: str = "selected",
) -> dict[str, nn.Parameter]:
    """Parameters matching ``include`` (or, without it, accepted by ``default``; all when None)
    and no ``exclude`` pattern. Same errors as :func:`prunable_parameters`."""
    named = dict(module.named_parameters())
    for label, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns or ():
            if not matches_any_name(named, pattern):
                raise ValueError(
                    f"{label} pattern {pattern!r} matches no parameter of {type(module).__name__}; "
                    f"parameter names look like {_examples(named)}"
                )
    if include:
        chosen = {n: p for n, p in named.items() if matches_any(n, include)}
    else:
        chosen = {n: p for n, p in named.items() if default is None or default(n, p)}
    if exclude:
        chosen = {n: p for n, p in chosen.items() if not matches_any(n, exclude)}
    if not chosen:
        hint = "" if include or default is None else (
            "; frozen (requires_grad=False) and bias-like parameters are skipped by default, select them with include")
        raise ValueError(
            f"no {purpose} parameter left in {type(module).__name__} (include={include}, exclude={exclude}){hint}"
        )
    return chosen


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def covering_patterns(names: Sequence[str], universe: Iterable[str]) -> list[str]:
    """Short glob patterns that match all of ``names`` and nothing else of ``universe``, for
    error messages that tell the user what to exclude (``*.embed_positions.weight``)."""
    wanted = set(names)
    others = [u for u in universe if u not in wanted]
    patterns: list[str] = []
    for name in names:
        if matches_any(name, patterns):
            continue
        parts = name.split(".")
        tails = ("*." + ".".join(parts[-keep:]) for keep in range(1, len(parts)))
        patterns.append(next((t for t in tails if not matches_any_name(others, t)), name))
    return patterns


def matches_any_name(names: Iterable[str], pattern: str) -> bool:
    return any(fnmatchcase(name, pattern) for name in names)


def _examples(named: dict, count: int = 4) -> str:
    return ", ".join(repr(n) for n in list(named)[:count]) + (", ..." if len(named) > count else "")
