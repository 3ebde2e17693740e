"""Matching a file's tensor names to a model's: the usual wrapper prefixes, and partial files.

Names are matched by :func:`match_names`, which tolerates the usual prefixes (``model.`` of a
LightningModule, ``module.`` of DDP, ``_orig_mod.`` of ``torch.compile``). A source may cover
only some of the model's tensors: :func:`match_masks` counts the others as unpruned (with a
warning); weights cannot be invented, so :func:`match_names` refuses them, naming exactly the
missing tensors and the ``exclude`` patterns that leave them out.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from lightning_slt.pruning.selection import covering_patterns

_WRAPPER_SEGMENTS = ("_orig_mod", "module")


def _strip_wrappers(name: str) -> str:
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_SEGMENTS)


def match_names(targets: Iterable[str], available: Iterable[str], what: str = "source") -> dict[str, str]:
    """Map each target (model) name to a name in ``available``.

    Tries the names as they are, then without wrapper segments (``module.``, ``_orig_mod.``),
    then with up to two leading components dropped on either side (a LightningModule's
    ``model.`` prefix).

    Raises:
        ValueError: some target has no counterpart; names exactly those (under the alignment
            that matched the most) and the ``exclude`` patterns that leave them out.
    """
    targets = list(targets)
    mapping, missing = match_partial(targets, available, what)
    if missing:
        raise ValueError(
            f"{what} does not match the model: it has no tensor for {len(missing)} of the {len(targets)} selected "
            f"(model names: {_listing(missing)}); select only what it has, e.g. exclude={covering_patterns(missing, targets)}"
        )
    return mapping


def match_partial(
    targets: Iterable[str], available: Iterable[str], what: str = "source"
) -> tuple[dict[str, str], list[str]]:
    """Like :func:`match_names`, but returns ``(mapping, missing)`` for a source that covers only
    some targets; the alignment (prefixes dropped) that matches the most wins.

    Raises:
        ValueError: no target has a counterpart (another architecture, or another model's file).
    """
    targets, available = list(targets), list(available)
    best: dict[str, str] = {}
    if not targets:
        return best, []
    for drop_t in range(3):
        for drop_a in range(3):
            keys = [_key(a, drop_a) for a in available]
            index = {k: a for k, a in zip(keys, available) if k}
            if len(index) != sum(1 for k in keys if k):
                continue  # dropping that much makes names ambiguous (encoder vs decoder)
            mapping = {t: index[k] for t in targets if (k := _key(t, drop_t)) in index}
            if len(set(mapping.values())) == len(mapping) and len(mapping) > len(best):
                best = mapping
            if len(best) == len(targets):
                return best, []
    if not best:
        raise ValueError(
            f"{what} does not match the model: no tensor for {_listing(targets)} (model names), "
            f"the {what} has {_listing(available)}; was it saved from a model of another architecture?"
        )
    return best, [t for t in targets if t not in best]


def match_masks(params: Mapping[str, Tensor], masks: Mapping[str, Tensor], what: str = "source") -> dict[str, Tensor]:
    """The source's masks for ``params`` (model names); tensors the source does not cover count
    as unpruned (all kept), with a warning that names them, so a file that pruned only some
    layers is usable as it is."""
    names, missing = match_partial(params, masks, what)
    found = {n: masks[s] for n, s in names.items()}
    if missing:
        warnings.warn(
            f"{what} has no mask for {len(missing)} of the {len(params)} selected tensors, taken as unpruned: "
            f"{_listing(missing)}; to leave them out of pruning altogether pass exclude={covering_patterns(missing, params)}",
            stacklevel=2,
        )
    return {n: found[n] if n in found else torch.ones(params[n].shape, dtype=torch.bool) for n in params}


def _listing(names: list[str], count: int = 8) -> str:
    return repr(names[:count])[:-1] + (f", ... ({len(names) - count} more)]" if len(names) > count else "]")


def _key(name: str, drop: int) -> str:
    parts = _strip_wrappers(name).split(".")
    return ".".join(parts[drop:]) if len(parts) > drop else ""


def check_shapes(tensors: Mapping[str, Tensor], params: Mapping[str, Tensor], what: str) -> None:
    """Refuse a file's tensors (matched to model names) whose shapes are not the model's: they come from another model."""
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise ValueError(
                f"{what}: tensor for {name!r} has shape {tuple(tensor.shape)}, the model's is "
                f"{tuple(params[name].shape)}; it comes from a model of other shapes"
            )
