"""One experiment process per folder: an exclusive lock on ``<output_dir>/experiment.lock``.

Two ``lightning-slt experiment`` processes on one folder used to both run, and the slower one
wrote an older ``last.ckpt`` over a finished run's. The lock is a POSIX ``flock`` on a file in
the folder: the kernel releases it when its process ends, however it ends, so a lock left by a
killed process is simply free for the next one (the holder it names is reported as taken over).
The file is written in place, never replaced (a rename would give the next process another
inode to lock), and holds who took it, for the message of a process that is refused.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator

from .paths import ExperimentPaths


class ExperimentLockedError(RuntimeError):
    """The folder's lock cannot be taken: another process is running an experiment there, or the
    lock file cannot be opened (a folder of that name, no write permission)."""


@contextmanager
def experiment_lock(output_dir: str | os.PathLike) -> Iterator[dict | None]:
    """Hold the folder's lock for the ``with`` block; yields the stale holder taken over, if any.

    Raises:
        ExperimentLockedError: another live process holds it (its pid, host and start are named).
    """
    import fcntl

    path = ExperimentPaths.of(output_dir).lock
    if path.is_dir():
        raise ExperimentLockedError(f"{path} is a folder, but the experiment's lock is a file of that name: remove it "
                                    "(or move it away if it holds files of yours) and run again")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:
        raise ExperimentLockedError(f"cannot open the lock file {path} ({error.strerror}): the experiment needs to "
                                    "write it; make the folder writable, or choose another output_dir") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExperimentLockedError(
                f"{output_dir} is in use by another `lightning-slt experiment` ({_describe(_holder(handle))}, "
                f"lock file {path}). Two processes on one folder would overwrite each other's checkpoints: wait "
                "for it to finish (or stop it), or choose another output_dir"
            ) from None
        stale = _holder(handle)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime(
            "%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)}) + "\n")
        handle.flush()
        try:
            yield stale
        finally:
            handle.seek(0)
            handle.truncate()  # free: an empty file names no holder
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _holder(handle) -> dict | None:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "null")
    except json.JSONDecodeError:
        return None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a process that has not yet written its pid"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"


def describe_stale(holder: dict | None) -> str | None:
    """The log line for a lock taken over from a process that ended without releasing it."""
    return None if not holder else f"took over the lock of an ended process ({_describe(holder)})"
