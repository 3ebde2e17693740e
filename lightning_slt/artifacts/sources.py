"""Reading masks and weights from the files users already have.

Besides our own Lightning checkpoints (masks under ``checkpoint["lightning_slt"]``, θk snapshots
in ``WeightRewind`` callback state) and our ticket files (``lightning-slt export``: θT and masks;
with ``--winning-ticket``: θk ⊙ m and m), this reads:

- a plain ``state_dict`` (zeros mark pruned entries of >= 2-dim tensors),
- a ``torch.nn.utils.prune`` state_dict (``<name>_orig`` + ``<name>_mask``; tensors it did not
  prune are plain, and read like a plain ``state_dict``),
- a Lightning checkpoint written with ``ModelPruning`` (either of the above inside ``state_dict``;
  its weights are the model at the checkpoint's ``global_step``, it records no θk),
- a Hugging Face ``save_pretrained`` folder or its ``model.safetensors`` / ``pytorch_model.bin``
  (sharded ones too; read like a plain ``state_dict``; it omits frozen tables such as Marian's
  sinusoidal positions),
- an OpenLTH ``mask.pth`` (a dict of 0/1 integer tensors; masks only, no weights).

Names are matched to the model's by :func:`match_names`, which tolerates the usual prefixes
(``model.`` of a LightningModule, ``module.`` of DDP, ``_orig_mod.`` of ``torch.compile``).
A source may cover only some of the model's tensors: :func:`match_masks` counts the others as
unpruned (with a warning); weights cannot be invented, so :func:`match_names` refuses them,
naming exactly the missing tensors and the ``exclude`` patterns that leave them out.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .selection import covering_patterns

STATE_KEY = "lightning_slt"  # top-level checkpoint key holding our masks
_WRAPPER_SEGMENTS = ("_orig_mod", "module")


@dataclass
class PruningSource:
    """What a file provides: weights (θT), masks, θ_step snapshots by step, and its kind.

    Kinds: "lightning_slt" / "lightning" / "lightning_model_pruning" (Lightning checkpoints with
    our masks, none, or ``ModelPruning``'s), "ticket" (θT and masks), "winning_ticket" (θk ⊙ m as
    ``snapshots[k]`` and m; no θT), "state_dict", "torch_prune", "safetensors", "openlth_mask".
    ``step`` is a Lightning checkpoint's ``global_step``: its ``weights`` are θ_step.
    """

    path: str
    kind: str
    weights: dict[str, Tensor] | None = None
    masks: dict[str, Tensor] | None = None
    snapshots: dict[int, dict[str, Tensor]] = field(default_factory=dict)
    optimizer_states: dict[int, dict] = field(default_factory=dict)
    step: int | None = None


def load_source(path: str | os.PathLike) -> PruningSource:
    """Load a checkpoint or mask file of any supported kind onto the CPU.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a readable torch file (truncated, corrupt) or holds no tensors.
        TicketError: (a ValueError) a ticket file that fails its checks, with the ticket's reason.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _from_folder(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pruning source {path!r} does not exist; pass the checkpoint of a finished run")
    if _is_ticket(path):
        return _from_ticket(path)
    if _is_safetensors(path):
        return _from_state_dict(path, _read_safetensors(path), kind="safetensors")
    obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise ValueError(f"pruning source {path!r} holds a {type(obj).__name__}, expected a checkpoint dict")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        return _from_lightning(path, obj)
    return _from_state_dict(path, dict(obj), kind="state_dict")


def _torch_load(path: str):
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
    return obj


_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what save_pretrained writes, in its order of preference


def _from_folder(path: str) -> PruningSource:
    """A Hugging Face ``save_pretrained`` folder: one weights file, or shards listed in an index."""
    for name in _HF_FILES:
        index = os.path.join(path, name + ".index.json")
        if os.path.isfile(index):
            with open(index, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle).get("weight_map", {}).values()))
            files = [os.path.join(path, shard) for shard in shards]
        elif os.path.isfile(os.path.join(path, name)):
            files = [os.path.join(path, name)]
        else:
            continue
        state: dict = {}
        for file in files:
            if not os.path.isfile(file):
                raise FileNotFoundError(f"pruning source {path!r}: shard {os.path.basename(file)!r} listed in its "
                                        "index is missing; copy the whole save_pretrained folder")
            part = _read_safetensors(file) if _is_safetensors(file) else _torch_load(file)
            if not isinstance(part, Mapping):
                raise ValueError(f"pruning source {file!r} holds a {type(part).__name__}, expected a state_dict")
            state.update(part)
        kind = "safetensors" if name.endswith(".safetensors") else "state_dict"
        return _from_state_dict(path, state, kind=kind)
    raise FileNotFoundError(f"pruning source {path!r} is a folder without {' or '.join(_HF_FILES)} (or their "
                            ".index.json); pass a checkpoint file, or a Hugging Face save_pretrained folder")


def _is_safetensors(path: str) -> bool:
    """safetensors files start with the 8-byte length of a JSON header that opens with ``{``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= os.path.getsize(path)


def _read_safetensors(path: str) -> dict[str, Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as err:
        raise ValueError(f"pruning source {path!r} is a safetensors file; `pip install safetensors` to read it") from err
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"cannot read pruning source {path!r} (safetensors: {str(err)[:200]}); the file is "
                         "truncated or corrupt — re-copy it or save it again with save_pretrained") from err


def _from_lightning(path: str, ckpt: Mapping) -> PruningSource:
    source = _from_state_dict(path, dict(ckpt["state_dict"]), kind="lightning")
    step = ckpt.get("global_step")
    source.step = step if isinstance(step, int) and not isinstance(step, bool) else None
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
            if value.dim() >= 2 and value.is_floating_point():  # a tensor it did not prune: zeros, as in a state_dict
                masks[key] = value != 0
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
