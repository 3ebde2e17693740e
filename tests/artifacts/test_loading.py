"""Every file a user hands in is read with weights_only=True: a pickled payload never runs.

The payload below creates a marker file when unpickled; each reader must refuse the file with
an error naming it, and the marker must not exist afterwards.
"""

import subprocess
import sys

import pytest
import torch

from lightning_slt import ConvergedMask, WeightRewind
from lightning_slt.artifacts import read_checkpoint
from lightning_slt.checkpointing import AtomicCheckpointIO
from lightning_slt.export.checkpoint import read_module_checkpoint
from lightning_slt.artifacts import load_source

from ..callbacks.tiny import fresh_module, make_trainer


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # what an attacker's file does: run code at unpickling
        return (open, (self.marker, "w"))


@pytest.fixture
def payload_file(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "innocent.ckpt"
    state = {"embed.weight": torch.randn(20, 8), "net.0.weight": torch.randn(16, 8)}
    torch.save({"state_dict": state, "hyper_parameters": {"d_model": 8}, "x": Payload(marker)}, path)
    return path, marker


@pytest.mark.parametrize("reader", [
    load_source,
    read_checkpoint,
    read_module_checkpoint,
    lambda path: AtomicCheckpointIO().load_checkpoint(path),
], ids=["load_source", "read_checkpoint", "export", "checkpoint_io"])
def test_payload_is_refused_and_inert(payload_file, reader):
    path, marker = payload_file
    with pytest.raises(ValueError, match="refused to read") as err:
        reader(path)
    assert str(path) in str(err.value)
    assert "torch.save(model.state_dict()" in str(err.value)  # the fix
    assert not marker.exists()


@pytest.mark.parametrize("callback", ["ConvergedMask", "WeightRewind"])
def test_callbacks_refuse_payload_before_training(payload_file, callback):
    path, marker = payload_file
    cb = ConvergedMask(str(path), sparsity=0.5) if callback == "ConvergedMask" else WeightRewind(3, source=str(path))
    with pytest.raises(ValueError, match="refused to read"):
        make_trainer(2, [cb]).fit(fresh_module(0))
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["export", "{path}", "--out", "{out}"],
    ["test", "--ckpt_path", "{path}"],
])
def test_commands_refuse_payload(payload_file, tmp_path, command):
    path, marker = payload_file
    argv = [a.format(path=path, out=tmp_path / "t.ticket") for a in command]
    proc = subprocess.run([sys.executable, "-m", "lightning_slt.cli", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "refused to read" in proc.stderr and str(path) in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()
    assert not (tmp_path / "t.ticket").exists()


def test_our_own_checkpoints_load_weights_only(dense_ckpt):
    """The allow-list covers everything our callbacks write (masks, snapshots, optimizer states)."""
    checkpoint = torch.load(dense_ckpt, map_location="cpu", weights_only=True)
    assert {"WeightRewind{'step': 0}", "WeightRewind{'step': 3}"} <= set(checkpoint["callbacks"])
    assert load_source(dense_ckpt).snapshots.keys() == {0, 3}


def test_not_a_regular_file_says_what_the_path_is(tmp_path):
    """Asked before anything is opened: open() of a FIFO waits for a writer, /dev/zero never ends."""
    import os

    from lightning_slt.artifacts.loading import not_a_regular_file

    (tmp_path / "file").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert not_a_regular_file(tmp_path / "file") is None and not_a_regular_file(tmp_path / "link") is None
    assert not_a_regular_file(tmp_path / "absent") == "does not exist"
    assert not_a_regular_file(tmp_path) == "is a folder, not a file"
    assert not_a_regular_file(tmp_path / "fifo") == "is not a regular file (a FIFO)"
    assert not_a_regular_file("/dev/zero") == "is not a regular file (a character device)"
    for link in ("dangling", "loop"):
        assert not_a_regular_file(tmp_path / link) == "is a symbolic link that leads nowhere (a loop, or its target is missing)"


def test_an_empty_or_safetensors_file_is_said_as_such(tmp_path):
    """Before: "(EOFError: )" for an empty file, and a raw SafetensorError out of torch.load's own
    safetensors path for a damaged ``.safetensors`` file."""
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint '.*last.ckpt' is empty \(0 bytes\)"):
        read_checkpoint(tmp_path / "last.ckpt")
    (tmp_path / "model.safetensors").write_bytes((2**62).to_bytes(8, "little") + b'{"w":1}')
    with pytest.raises(ValueError, match=r"cannot read checkpoint '.*model.safetensors': it is truncated or corrupt.*"
                                         r"SafetensorError: Error while deserializing header: header too large"):
        read_checkpoint(tmp_path / "model.safetensors")
