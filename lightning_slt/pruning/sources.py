"""Reading masks and weights from the files users already have.

Besides our own Lightning checkpoints (masks under ``checkpoint["lightning_slt"]``, θk snapshots
in ``WeightRewind`` callback state) and our ticket files (``lightning-slt export``: θT and masks;
with ``--winning-ticket``: θk ⊙ m and m), this reads:

- a plain ``state_dict`` (zeros mark pruned entries of >= 2-dim tensors),
- a ``torch.nn.utils.prune`` state_dict (``<name>_orig`` + ``<name>_mask``),
- a Lightning checkpoint written with ``ModelPruning`` (either of the above inside ``state_dict``),
- an OpenLTH ``mask.pth`` (a dict of 0/1 integer tensors; masks only, no weights).

Names are matched to the model's by :func:`match_names`, which tolerates the usual prefixes
(``model.`` of a LightningModule, ``module.`` of DDP, ``_orig_mod.`` of ``torch.compile``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

STATE_KEY = "lightning_slt"  # top-level checkpoint key holding our masks
_WRAPPER_SEGMENTS = ("_orig_mod", "module")


@dataclass
class PruningSource:
    """What a file provides: weights (θT), masks, θ_step snapshots by step, and its kind.

    Kinds: "lightning_slt" / "lightning" / "lightning_model_pruning" (Lightning checkpoints with
    our masks, none, or ``ModelPruning``'s), "ticket" (θT and masks), "winning_ticket" (θk ⊙ m as
    ``snapshots[k]`` and m; no θT), "state_dict", "torch_prune", "openlth_mask".
    """

    path: str
    kind: str
    weights: dict[str, Tensor] | None = None
    masks: dict[str, Tensor] | None = None
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    optimizer_states: dict[int, dict] = field(default_factory=dict)


def load_source(path: str | os.PathLike) -> PruningSource:
    """Load a checkpoint or mask file of any supported kind onto the CPU.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a readable torch file (truncated, corrupt) or holds no tensors.
        TicketError: (a ValueError) a ticket file that fails its checks, with the ticket's reason.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pruning source {path!r} does not exist; pass the checkpoint of a finished run")
    if _is_ticket(path):
        return _from_ticket(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as err:
        if "Unsupported global" in str(err):  # a refused object, not garbage bytes
            raise ValueError(
                f"refused to read pruning source {path!r}: it holds Python objects besides tensors, which "
                f"weights-only loading does not unpickle (they could run code) ({str(err).splitlines()[0][:160]}); "
                "save the weights with torch.save(model.state_dict(), path), or pass a checkpoint written by Lightning"
            ) from err
        raise ValueError(
            f"cannot read pruning source {path!r} ({type(err).__name__}: {str(err)[:200]}); "
            "the file is truncated or corrupt, or not a torch checkpoint — re-copy it or pick another checkpoint"
        ) from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"pruning source {path!r} holds a {type(obj).__name__}, expected a checkpoint dict")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        return _from_lightning(path, obj)
    return _from_state_dict(path, dict(obj), kind="state_dict")


def _from_lightning(path: str, ckpt: Mapping) -> PruningSource:
    source = _from_state_dict(path, dict(ckpt["state_dict"]), kind="lightning")
    ours = ckpt.get(STATE_KEY)
    if isinstance(ours, Mapping) and ours.get("masks"):
        source.masks = {n: m.bool() for n, m in ours["masks"].items()}
        source.kind = "lightning_slt"
    elif source.kind == "torch_prune":
        source.kind = "lightning_model_pruning"
    for step, state in rewind_states(ckpt).items():
        if state.get("snapshot"):
            source.snapshots[step] = state["snapshot"]
            if state.get("optimizer") is not None:
                source.optimizer_states[step] = {
                    "optimizer": state["optimizer"],
                    "lr_schedulers": state.get("lr_schedulers", []),
                }
    return source


def rewind_states(ckpt: Mapping) -> dict[int, Mapping]:
    """The ``WeightRewind`` callback states of a Lightning checkpoint, by step.

    A state's ``snapshot`` is θ_step (parameter names of the LightningModule), or None when the
    checkpoint was saved before that step was reached.
    """
    states = {}
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("WeightRewind") and isinstance(state, Mapping) and "step" in state:
            states[int(state["step"])] = state
    return states


def _is_ticket(path: str) -> bool:
    """Ticket files start with their magic bytes; a file cut inside them is a truncated ticket."""
    from lightning_slt.export.ticket import (
        MAGIC,  # the format module imports torch and numpy only
    )

    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC))
    return bool(head) and MAGIC.startswith(head)


TICKET_KINDS = ("ticket", "winning_ticket")  # PruningSource.kind of the files `lightning-slt export` writes


def _from_ticket(path: str) -> PruningSource:
    """A ticket holds θT and its masks; a winning ticket holds θk ⊙ m, offered as ``snapshots[k]``."""
    from lightning_slt.export.ticket import TicketError, read_ticket
    from lightning_slt.export.winning_ticket import WINNING_TICKET_KIND

    ticket = read_ticket(path)  # checks magic, version, sizes and checksums; names the file and the fault
    if ticket.extra.get("kind") != WINNING_TICKET_KIND:
        return PruningSource(path, "ticket", weights=ticket.state_dict, masks=ticket.masks)
    step = ticket.extra.get("rewind_step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TicketError(
            f"{path}: winning ticket has no valid rewind_step in its header (got {step!r}); "
            "re-export it with `lightning-slt export <checkpoint> --winning-ticket`"
        )
    return PruningSource(path, "winning_ticket", masks=ticket.masks, snapshots={step: ticket.state_dict})


def _from_state_dict(path: str, state: dict, kind: str) -> PruningSource:
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"pruning source {path!r} holds no tensors")
    if any(k.endswith("_orig") for k in tensors) and any(k.endswith("_mask") for k in tensors):
        return _from_torch_prune(path, tensors)
    if _is_mask_file(tensors):
        masks = {k: v.bool() for k, v in tensors.items()}
        return PruningSource(path, "openlth_mask", weights=None, masks=masks)
    masks = {k: v != 0 for k, v in tensors.items() if v.dim() >= 2 and v.is_floating_point()}
    return PruningSource(path, kind, weights=tensors, masks=masks)


def _from_torch_prune(path: str, tensors: dict[str, Tensor]) -> PruningSource:
    weights, masks = {}, {}
    for key, value in tensors.items():
        if key.endswith("_orig"):
            name = key[: -len("_orig")]
            mask = tensors.get(name + "_mask")
            if mask is None:
                raise ValueError(f"pruning source {path!r}: {key!r} has no matching {name + '_mask'!r}")
            masks[name] = mask.bool()
            weights[name] = value * mask.to(value.dtype)
        elif not key.endswith("_mask"):
            weights[key] = value
    return PruningSource(path, "torch_prune", weights=weights, masks=masks)


def _is_mask_file(tensors: Mapping[str, Tensor]) -> bool:
    """OpenLTH saves masks as int tensors of 0/1; real weights are never all 0/1 integers."""
    return all(not v.is_floating_point() or bool(((v == 0) | (v == 1)).all()) for v in tensors.values()) and any(
        not v.is_floating_point() for v in tensors.values()
    )


def _strip_wrappers(name: str) -> str:
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_SEGMENTS)


def match_names(targets: Iterable[str], available: Iterable[str], what: str = "source") -> dict[str, str]:
    """Map each target (model) name to a name in ``available``.

    Tries the names as they are, then without wrapper segments (``module.``, ``_orig_mod.``),
    then with up to two leading components dropped on either side (a LightningModule's
    ``model.`` prefix).

    Raises:
        ValueError: some target has no counterpart; lists a few on each side.
    """
    targets, available = list(targets), list(available)
    for drop_t in range(3):
        for drop_a in range(3):
            index = {_key(a, drop_a): a for a in available}
            if len(index) != len(available):
                continue  # dropping that much makes names ambiguous (encoder vs decoder)
            mapping = {t: index.get(_key(t, drop_t)) for t in targets}
            if all(v is not None for v in mapping.values()) and len(set(mapping.values())) == len(mapping):
                return mapping  # type: ignore[return-value]
    exact = {_strip_wrappers(a) for a in available}
    missing = [t for t in targets if _strip_wrappers(t) not in exact]
    raise ValueError(
        f"{what} does not match the model: no tensor for {missing[:5]} (model names), "
        f"the {what} has {available[:5]}; was it saved from a model of another architecture?"
    )


def _key(name: str, drop: int) -> str:
    parts = _strip_wrappers(name).split(".")
    return ".".join(parts[drop:]) if len(parts) > drop else ""
