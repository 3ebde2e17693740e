"""Atomic writes, the one implementation the package uses: every file goes through a temporary
file beside its target and ``os.replace``, so a kill never leaves a half-written file that a
later step would trust (checkpoints, masks, tickets, metrics, reports, test outputs)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's temporary files are 0o600


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our atomic writes in progress (``.<name>.<random>.tmp``):
    another process may be writing it, so a folder holding only such files is not foreign."""
    return name.startswith(".") and name.endswith(".tmp")


def _atomic(path: Path, write) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        os_error = _os_error_of(err)
        if os_error is not None:
            raise _named(os_error, path) from err
        raise


def _os_error_of(err: BaseException) -> OSError | None:
    """The OS error behind a failed write. torch.save's zip writer turns a full disk into
    "RuntimeError: [enforce fail at inline_container.cc] unexpected pos" while cleaning up, with
    the ENOSPC only in the exception's context."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _named(err: OSError, path: Path) -> OSError:
    """The OS error of a failed write with the file it was for and what to do (torch and the OS
    name no path: "No space left on device" alone does not say which disk)."""
    fix = {errno.ENOSPC: "free space on that file system or write to another one",
           errno.EDQUOT: "free space within your disk quota or write to another file system",
           errno.EROFS: "the file system is read-only: choose a writable folder",
           errno.EACCES: "the folder is not writable for this user: fix its permissions or choose another",
           errno.EPERM: "the folder is not writable: fix its permissions or attributes or choose another"}
    advice = fix.get(err.errno, "check the folder and the disk")
    return OSError(err.errno, f"cannot write {path}: {err.strerror}; {advice} "
                              "(an earlier version of the file, if any, is unchanged)")


def write_bytes(path: Path, parts: bytes | Iterable[bytes]) -> None:
    """Write ``parts`` (one bytes object or several, in order) as the whole file."""
    chunks = [parts] if isinstance(parts, (bytes, bytearray, memoryview)) else parts
    _atomic(Path(path), lambda handle: [handle.write(chunk) for chunk in chunks])


def write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda handle: handle.write(text.encode()))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_torch(path: Path, obj: Any) -> None:
    _atomic(Path(path), lambda handle: torch.save(obj, handle))


def read_json(path: Path) -> Any:
    """The JSON value of ``path``; a damaged file is a ValueError naming the file and the line."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f"line {err.lineno}: {err.msg}" if isinstance(err, json.JSONDecodeError) else f"invalid UTF-8 ({err.reason})"
        raise ValueError(f"{path} is damaged, not valid JSON ({where})") from None


def check_not_inputs(outputs: dict[str, Any], inputs: dict[str, Any], fix: str = "choose another output path") -> None:
    """Refuse a command whose output path is one of its inputs (same file by path or inode), so a
    typo such as ``--out best.ckpt`` never replaces the file being read. Keys name the options."""
    for out_name, out_path in outputs.items():
        for in_name, in_path in inputs.items():
            if out_path is not None and in_path is not None and _same_file(Path(out_path), Path(in_path)):
                raise ValueError(f"refusing to write {out_name} {out_path}: it is the {in_name} this command "
                                 f"reads, and writing it would destroy that input; {fix}")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_writable(folder: str | os.PathLike, what: str, fix: str) -> None:
    """Refuse, before any work, a folder files cannot be written to (read-only disk, no
    permission): probed by creating and removing a file in it, or in its nearest existing parent
    when it is yet to be made, so that a long run does not find out at its first save."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".lightning_slt-probe.")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OSError(err.errno, f"{what} {folder} is not writable ({probe}: {err.strerror}); {fix}") from None
