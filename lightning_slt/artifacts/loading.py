"""One loader for every checkpoint a user hands in, with one error policy.

Files are read with ``torch.load(weights_only=True)``: tensors, containers and plain Python
values only, so a pickled payload inside a "checkpoint" is refused instead of run. Our own
checkpoints (weights, masks, snapshots, optimizer and RNG states, tokenizer bytes,
hyper-parameters as plain dicts) need nothing beyond that allow-list.
"""

from __future__ import annotations

import os
import pickle
import stat
import zipfile
from pathlib import Path
from typing import Any

import torch

_READ_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError)
try:  # torch.load reads a path ending in .safetensors through safetensors, whose errors are its own
    from safetensors import SafetensorError

    _READ_ERRORS += (SafetensorError,)
except ImportError:
    pass


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool | None = True,
                    mmap: bool = False, what: str = "checkpoint") -> Any:
    """``torch.load`` of a checkpoint file, with errors that name the file and the fix.

    Args:
        weights_only: as ``torch.load``; True (the default) never unpickles arbitrary objects.
        mmap: map the file instead of reading it (cheap when only shapes are needed).
        what: how the file is called in messages ("checkpoint", "pruning source", ...).

    Raises:
        FileNotFoundError: the file does not exist, or is a folder, a FIFO, a device or a symbolic
            link that leads nowhere (`not_a_regular_file`, asked before anything is opened).
        ValueError: the file is empty, truncated, corrupt, not a torch file, or holds objects that
            weights-only loading refuses.
    """
    name = os.fspath(path)
    if is_distributed_checkpoint(path):
        return _read_distributed(Path(path), map_location, weights_only, what)
    problem = not_a_regular_file(path)
    if problem == DOES_NOT_EXIST:
        raise FileNotFoundError(
            f"{what} {name!r} does not exist; check the path (ckpt_path), or leave ckpt_path unset to train "
            "from scratch"
        )
    if problem:
        raise FileNotFoundError(f"{what} {name!r} {problem}; pass a checkpoint file, e.g. runs/<run>/checkpoints/last.ckpt")
    _refuse_text(what, name)
    try:
        return _load(path, map_location, weights_only, mmap)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):  # a refused object, not garbage bytes
            raise ValueError(
                f"refused to read {what} {name!r}: it holds Python objects besides tensors and plain values, "
                f"which weights-only loading does not unpickle because they could run code ({_first_line(err)}); "
                "save weights with torch.save(model.state_dict(), path) or use a checkpoint written by Lightning"
            ) from err
        raise _corrupt(what, name, err) from err
    except _READ_ERRORS as err:
        raise _corrupt(what, name, err) from err


DOES_NOT_EXIST = "does not exist"
_KINDS = {stat.S_ISDIR: "is a folder, not a file", stat.S_ISFIFO: "is not a regular file (a FIFO)",
          stat.S_ISCHR: "is not a regular file (a character device)", stat.S_ISBLK: "is not a regular file (a block device)",
          stat.S_ISSOCK: "is not a regular file (a socket)"}


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a file, said after its name ("does not exist", "is a folder, not
    a file", "is not a regular file (a FIFO)"...), or None for a regular file.

    Asked before a file is opened: ``open()`` of a FIFO waits for a writer, and a device such as
    /dev/zero never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if os.path.islink(path):  # a loop (ELOOP) or a missing target
            return "is a symbolic link that leads nowhere (a loop, or its target is missing)"
        if isinstance(error, FileNotFoundError):
            return DOES_NOT_EXIST
        return f"cannot be read ({error.strerror or error})"
    return next((kind for test, kind in _KINDS.items() if test(mode)), None)


DCP_METADATA, LIGHTNING_METADATA = ".metadata", "meta.pt"  # what torch.distributed.checkpoint / Lightning write


def is_distributed_checkpoint(path: str | os.PathLike) -> bool:
    """A distributed checkpoint folder, as Lightning's ``ModelParallelStrategy`` (FSDP2) writes it:
    the shards (``.metadata``, ``__<rank>_0.distcp``) and ``meta.pt`` with everything else."""
    return Path(path, DCP_METADATA).is_file() and Path(path, LIGHTNING_METADATA).is_file()


def _read_distributed(path: Path, map_location: Any, weights_only: bool | None, what: str) -> dict:
    """The folder as one whole checkpoint on this process: its shards consolidated
    (``torch.distributed.checkpoint.format_utils.dcp_to_torch_save``, through a temporary file)
    into ``state_dict`` and ``optimizer_<i>``, beside ``meta.pt`` (callbacks, masks, step)."""
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    meta = read_checkpoint(path / LIGHTNING_METADATA, map_location, weights_only, what=what)
    with tempfile.TemporaryDirectory() as folder:
        whole = Path(folder) / "whole.pt"
        try:
            dcp_to_torch_save(path, whole)
        except Exception as err:  # noqa: BLE001 - DCP raises many kinds for a damaged folder
            raise ValueError(f"cannot read {what} {os.fspath(path)!r}: its distributed checkpoint shards do not "
                             f"load ({type(err).__name__}: {_first_line(err)}); copy the whole folder again") from err
        shards = read_checkpoint(whole, map_location, weights_only, what=what)
    optimizers = [shards[key] for key in sorted(k for k in shards if k.startswith("optimizer_"))]
    return {**meta, "state_dict": shards["state_dict"], **({"optimizer_states": optimizers} if optimizers else {})}


def _refuse_text(what: str, name: str) -> None:
    """A config or text file handed in as a checkpoint (``export conf/x.yaml``) is said as such,
    not as an unpickling error: torch files start with a zip header or a pickle opcode. So is an
    empty file (torch says "EOFError: ")."""
    with open(name, "rb") as file:
        head = file.read(256)
    if not head:
        raise ValueError(f"{what} {name!r} is empty (0 bytes): a copy or a save that did not finish; re-copy it, "
                         "or pass another checkpoint (e.g. an earlier step's)")
    if head.startswith((b"PK", b"\x80")):
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        kind = "a YAML config" if name.endswith((".yaml", ".yml")) or ":" in text.split("\n", 1)[0] else "a text file"
        raise ValueError(
            f"{what} {name!r} is {kind}, not a torch checkpoint (it starts with {text.splitlines()[0][:60]!r}); "
            "pass a checkpoint file written by a run, e.g. runs/<run>/checkpoints/last.ckpt"
        )


def _corrupt(what: str, name: str, err: BaseException) -> ValueError:
    return ValueError(
        f"cannot read {what} {name!r}: it is truncated or corrupt, or not a torch checkpoint "
        f"({type(err).__name__}: {_first_line(err)}). If the file is truncated or corrupt, re-copy it or use "
        "another checkpoint (e.g. an earlier step's), or delete it to train that run again from its start"
    )


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0][:200]


def _load(path: str | os.PathLike, map_location: Any, weights_only: bool | None, mmap: bool) -> Any:
    if mmap and zipfile.is_zipfile(path):  # mmap needs the zip format; the legacy format is read whole
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=True)
    return torch.load(path, map_location=map_location, weights_only=weights_only)
