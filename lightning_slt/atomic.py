"""Atomic writes, the one implementation the package uses: every file goes through a temporary
file beside its target and ``os.replace``, so a kill never leaves a half-written file that a
later step would trust (checkpoints, masks, tickets, metrics, reports, test outputs)."""

from __future__ import annotations

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


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
