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
- an OpenLTH ``mask.pth`` (a dict of 0/1 integer tensors; masks only, no weights). Integer
  matrices of other values with no float matrix beside them (a quantized state_dict) are refused.

Each kind is one entry of ``READERS`` (a test on the file, and its reader), tried in order;
every reader returns a :class:`RunCheckpoint`, and every torch file is read by ``read_checkpoint``.
Names are matched to the model's in ``matching``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

from torch import Tensor

from lightning_slt.pruning import masks_from_zeros

from . import keys
from .checkpoint import Kind, RunCheckpoint, run_checkpoint
from .loading import DOES_NOT_EXIST, is_distributed_checkpoint, not_a_regular_file, read_checkpoint
from .ticket import MAGIC, TicketError, read_ticket

WHAT = "pruning source"  # how these files are called in messages


def load_source(path: str | os.PathLike) -> RunCheckpoint:
    """Load a checkpoint or mask file of any supported kind onto the CPU.

    Raises:
        FileNotFoundError: the path does not exist, or is a FIFO, a device or a symbolic link that
            leads nowhere (asked before anything is opened), or a shard of a folder is missing.
        ValueError: the file is not a readable torch file (truncated, corrupt) or holds no tensors.
        TicketError: (a ValueError) a ticket file that fails its checks, with the ticket's reason.
    """
    path = os.fspath(path)
    problem = not_a_regular_file(path)  # asked first: open() of a FIFO would wait for a writer
    if problem == DOES_NOT_EXIST:
        raise FileNotFoundError(f"{WHAT} {path!r} does not exist; pass the checkpoint of a finished run")
    if problem and not os.path.isdir(path):
        raise FileNotFoundError(f"{WHAT} {path!r} {problem}; pass a checkpoint file or a Hugging Face save_pretrained "
                                "folder")
    read = next((read for _, recognise, read in READERS if recognise(path)), None)
    if read is None:
        raise FileNotFoundError(f"{WHAT} {path!r} is neither a file nor a folder; pass a checkpoint file or a "
                                "Hugging Face save_pretrained folder")
    return read(path)


def _from_torch_file(path: str) -> RunCheckpoint:
    obj = read_checkpoint(path, what=WHAT)  # weights only: a pickled payload never runs
    if not isinstance(obj, Mapping):
        raise ValueError(f"{WHAT} {path!r} holds a {type(obj).__name__}, expected a checkpoint dict")
    if keys.STATE_DICT_KEY in obj and isinstance(obj[keys.STATE_DICT_KEY], Mapping):
        return _from_lightning(path, obj)
    return _from_state_dict(path, dict(obj), kind=Kind.STATE_DICT)


_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what save_pretrained writes, in its order of preference


def _from_folder(path: str) -> RunCheckpoint:
    """A Hugging Face ``save_pretrained`` folder: one weights file, or shards listed in an index."""
    for name in _HF_FILES:
        index = os.path.join(path, name + ".index.json")
        if os.path.isfile(index):
            files = [os.path.join(path, shard) for shard in _index_shards(index)]
        elif os.path.isfile(os.path.join(path, name)):
            files = [os.path.join(path, name)]
        else:
            continue
        state: dict = {}
        for file in files:
            problem = not_a_regular_file(file)
            if problem:
                problem = "is missing" if problem == DOES_NOT_EXIST else problem
                raise FileNotFoundError(f"pruning source {path!r}: shard {os.path.basename(file)!r} listed in its "
                                        f"index {problem}; copy the whole save_pretrained folder")
            part = _read_safetensors(file) if _is_safetensors(file) else read_checkpoint(file, what=WHAT)
            if not isinstance(part, Mapping):
                raise ValueError(f"pruning source {file!r} holds a {type(part).__name__}, expected a state_dict")
            state.update(part)
        kind = Kind.SAFETENSORS if name.endswith(".safetensors") else Kind.STATE_DICT
        return _from_state_dict(path, state, kind=kind)
    raise FileNotFoundError(f"pruning source {path!r} is a folder without {' or '.join(_HF_FILES)} (or their "
                            ".index.json); pass a checkpoint file, or a Hugging Face save_pretrained folder")


def _index_shards(index: str) -> list[str]:
    """The shard file names a ``save_pretrained`` index lists: plain names of files beside it, never
    a path that leads out of the folder ("../x", "/x", "sub/x")."""
    fix = "re-copy the folder, or save the model again with save_pretrained"
    try:
        with open(index, encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{WHAT} index {index!r} is not valid JSON (line {error.lineno}, column {error.colno}: "
                         f"{error.msg}); {fix}") from None
    except (UnicodeDecodeError, OSError) as error:
        raise ValueError(f"{WHAT} index {index!r} cannot be read ({error}); {fix}") from None
    if not isinstance(content, dict) or "weight_map" not in content:
        got = f"holds a {type(content).__name__}" if not isinstance(content, dict) else "has no 'weight_map'"
        raise ValueError(f"{WHAT} index {index!r} {got}, expected an object with a 'weight_map' of tensor names to "
                         f"shard files; {fix}")
    weight_map = content["weight_map"]
    if not isinstance(weight_map, dict):
        raise ValueError(f"{WHAT} index {index!r}: its 'weight_map' is a {type(weight_map).__name__}, expected an "
                         f"object of tensor names to shard files; {fix}")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or shard in ("", ".", "..") or os.path.basename(shard) != shard:
            raise ValueError(f"{WHAT} index {index!r} lists shard {shard!r} for {tensor!r}, which is not a file name "
                             f"in its folder (save_pretrained names shards such as 'model-00001-of-00002.safetensors' "
                             f"beside the index); {fix}")
    return sorted(set(weight_map.values()))


def _is_safetensors(path: str) -> bool:
    """A ``.safetensors`` name, or the content of one: the 8-byte length of a JSON header that
    opens with ``{`` (a damaged one is then said as such by safetensors)."""
    if path.endswith(".safetensors"):
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= os.path.getsize(path)


def _read_safetensors(path: str) -> dict[str, Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as err:
        raise ValueError(f"pruning source {path!r} is a safetensors file; `pip install safetensors` to read it") from err
    if os.path.getsize(path) == 0:
        raise ValueError(f"pruning source {path!r} is empty (0 bytes): a copy or a save that did not finish; re-copy "
                         "it or save it again with save_pretrained")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"cannot read pruning source {path!r} (safetensors: {str(err)[:200]}); the file is "
                         "truncated or corrupt — re-copy it or save it again with save_pretrained") from err


def _from_lightning(path: str, ckpt: Mapping) -> RunCheckpoint:
    """Ours (masks, θk snapshots), or a foreign run's: its zeros or ``ModelPruning``'s masks."""
    run = run_checkpoint(ckpt, path)
    plain = _from_state_dict(path, dict(ckpt[keys.STATE_DICT_KEY]), kind=Kind.LIGHTNING)
    run.weights = plain.weights
    if run.kind is not Kind.LIGHTNING_SLT:
        run.masks = plain.masks
        run.kind = Kind.LIGHTNING_MODEL_PRUNING if plain.kind is Kind.TORCH_PRUNE else plain.kind
    return run


def _is_ticket(path: str) -> bool:
    """Ticket files start with their magic bytes; a file cut inside them is a truncated ticket."""
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC))
    return bool(head) and MAGIC.startswith(head)


def _from_ticket(path: str) -> RunCheckpoint:
    """A ticket holds θT and its masks; a winning ticket holds θk ⊙ m, offered as ``snapshots[k]``."""
    ticket = read_ticket(path)  # checks magic, version, sizes and checksums; names the file and the fault
    if ticket.extra.get(keys.EXTRA_KIND) != Kind.WINNING_TICKET:
        return RunCheckpoint(path, Kind.TICKET, weights=ticket.state_dict, masks=ticket.masks,
                             tokenizer=ticket.tokenizer_proto)
    step = ticket.extra.get(keys.EXTRA_REWIND_STEP)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TicketError(
            f"{path}: winning ticket has no valid rewind_step in its header (got {step!r}); "
            "re-export it with `lightning-slt export <checkpoint> --winning-ticket`"
        )
    return RunCheckpoint(path, Kind.WINNING_TICKET, masks=ticket.masks, snapshots={step: ticket.state_dict},
                         rewind_steps=[step], tokenizer=ticket.tokenizer_proto)


def _from_state_dict(path: str, state: dict, kind: Kind) -> RunCheckpoint:
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"{WHAT} {path!r} holds no tensors")
    if any(k.endswith("_orig") for k in tensors) and any(k.endswith("_mask") for k in tensors):
        return _from_torch_prune(path, tensors)
    _check_not_quantized(path, tensors)
    if _is_mask_file(tensors):
        masks = {k: v.bool() for k, v in tensors.items()}
        return RunCheckpoint(path, Kind.OPENLTH_MASK, weights=None, masks=masks)
    return RunCheckpoint(path, kind, weights=tensors, masks=masks_from_zeros(tensors))


def _from_torch_prune(path: str, tensors: dict[str, Tensor]) -> RunCheckpoint:
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
    unpruned = {k: v for k, v in weights.items() if k not in masks}  # tensors it did not prune: zeros, as in a state_dict
    masks.update(masks_from_zeros(unpruned))
    return RunCheckpoint(path, Kind.TORCH_PRUNE, weights=weights, masks=masks)


def _is_mask_file(tensors: Mapping[str, Tensor]) -> bool:
    """OpenLTH saves masks as integer tensors of 0/1: a file of integer (or bool) tensors, every
    tensor of which holds only 0 and 1. Real weights are never all 0/1, and quantized ones have
    other values (`_check_not_quantized`)."""
    return any(not v.is_floating_point() for v in tensors.values()) and all(map(_zero_one, tensors.values()))


def _zero_one(tensor: Tensor) -> bool:
    return bool(((tensor == 0) | (tensor == 1)).all())


def _check_not_quantized(path: str, tensors: Mapping[str, Tensor]) -> None:
    """Integer matrices with values other than 0 and 1, and no floating-point matrix to prune: a
    quantized state_dict (int8 weights, perhaps with float scales), not weights and not masks.
    Read as masks, its quantized zeros would be pruned."""
    if any(v.is_floating_point() and v.dim() >= 2 for v in tensors.values()):
        return
    for name, tensor in tensors.items():
        if tensor.dim() >= 2 and tensor.numel() and not tensor.is_floating_point() and not _zero_one(tensor):
            raise ValueError(
                f"{WHAT} {path!r} holds integer tensors that are not 0/1 masks ({name!r}: {tensor.dtype}, values "
                f"{tensor.min().item()} to {tensor.max().item()}) and no floating-point weights: a quantized "
                "state_dict, which is neither weights to prune by nor a mask file: dequantize it to float weights "
                "(torch.save of the float model's state_dict), or pass a file of 0/1 masks"
            )


READERS: list[tuple[str, Callable[[str], bool], Callable[[str], RunCheckpoint]]] = [
    # (kind of file, does this path look like one, its reader); the first that recognises the path reads it
    ("distributed checkpoint folder (FSDP2)", is_distributed_checkpoint, _from_torch_file),
    ("Hugging Face save_pretrained folder", os.path.isdir, _from_folder),
    ("ticket", _is_ticket, _from_ticket),
    ("safetensors", _is_safetensors, lambda path: _from_state_dict(path, _read_safetensors(path), Kind.SAFETENSORS)),
    ("torch file: Lightning checkpoint, state_dict, torch.prune, OpenLTH mask", os.path.isfile, _from_torch_file),
]
