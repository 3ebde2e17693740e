"""The output paths of ``translate`` and ``export``, checked before any model is loaded.

Why: these commands load a model and translate or convert it before they write; an output path
that cannot be written was found only then (55 s of translation lost in one case, and "File
exists" as the whole message when the output's parent was a file). Each check here says what is
wrong with the path, where, and the fix, and creates nothing that stays.

What stays as it was: an existing output file is replaced (atomically) and missing parent
folders are created, as before; a CTranslate2 folder must be new or empty (``check_target`` in
``export.ctranslate2``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lightning_slt.atomic import check_not_inputs, check_writable


def check_output_file(option: str, path: str | os.PathLike | None,
                      inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse a file path the command could not write, or should not: before any work.

    Refused: one of ``inputs`` (same file by path, link or inode), a path inside an input that
    is a folder (a distributed checkpoint), an existing folder, a path under a file, a folder
    that is not writable. ``option`` names the path in messages (``--output``); None is stdout.

    Raises:
        ValueError: what is wrong with the path and how to fix it.
        OSError: the folder it goes into is not writable (read-only disk, no permission).
    """
    if path is None:
        return
    check_not_inputs({option: path}, inputs)
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"refusing to write {option} {path}: it is a folder; give the path of a file (in that "
                         "folder or elsewhere)")
    check_output_parent(option, out, inputs)


def check_output_parent(option: str, out: Path, inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """The checks of ``check_output_file`` on what holds ``out``: no input folder, no file as a
    parent, a writable folder (the nearest existing one, when ``out``'s folders are yet to be made)."""
    target = out.absolute()
    for name, given in inputs.items():
        if given is not None and Path(given).is_dir() and _inside(target, Path(given)):
            raise ValueError(f"refusing to write {option} {out}: it is inside the {name} {given}, a folder this "
                             "command reads, and writing there would change that input; choose a path outside it")
    parent = target.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {option} {out}: {parent} is a file, not a folder, so nothing can be written "
                         f"under it; choose a path in a folder (or move {parent} away)")
    check_writable(parent, f"{option} {out}: the folder", f"choose a writable folder for {option}")


def _inside(path: Path, folder: Path) -> bool:
    resolved, base = path.resolve(), folder.resolve()
    return resolved == base or base in resolved.parents
