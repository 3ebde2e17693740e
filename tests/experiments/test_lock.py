"""One experiment process per folder: the lock is held for the block, a second holder is refused
naming the first, the file is emptied on release, and a dead holder's record is taken over."""

import json
import os
import socket

import pytest

from lightning_slt.experiments.lock import ExperimentLockedError, describe_stale, experiment_lock
from lightning_slt.experiments.paths import LOCK_FILE


def test_the_lock_names_its_holder_while_held_and_is_emptied_after(tmp_path):
    with experiment_lock(tmp_path / "exp") as stale:
        assert stale is None
        holder = json.loads((tmp_path / "exp" / LOCK_FILE).read_text())
        assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname()) and "command" in holder
    assert (tmp_path / "exp" / LOCK_FILE).read_text() == ""
    with experiment_lock(tmp_path / "exp") as stale:  # free again
        assert stale is None


def test_a_second_process_on_the_folder_is_refused_naming_the_first(tmp_path):
    with experiment_lock(tmp_path):
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        with pytest.raises(ExperimentLockedError) as info:
            with experiment_lock(tmp_path):  # another open file description: flock conflicts as across processes
                pass
        assert str(info.value) == (
            f"{tmp_path} is in use by another `lightning-slt experiment` (pid {holder['pid']} on host {holder['host']}, "
            f"since {holder['since']}, lock file {tmp_path / LOCK_FILE}). Two processes on one folder would overwrite "
            "each other's checkpoints: wait for it to finish (or stop it), or choose another output_dir")
        assert json.loads((tmp_path / LOCK_FILE).read_text()) == holder  # the refused one changed nothing


def test_the_record_of_a_process_that_died_holding_the_lock_is_taken_over(tmp_path):
    dead = {"pid": 4242, "host": "node7", "since": "2026-01-01 00:00:00 UTC", "command": "lightning-slt experiment"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(dead) + "\n")  # the kernel released its flock when it died
    with experiment_lock(tmp_path) as stale:
        assert stale == dead
        assert describe_stale(stale) == ("took over the lock of an ended process (pid 4242 on host node7, since "
                                         "2026-01-01 00:00:00 UTC)")
    assert describe_stale(None) is None
    (tmp_path / LOCK_FILE).write_text("not json")
    with experiment_lock(tmp_path) as stale:
        assert stale is None
