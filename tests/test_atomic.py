"""Atomic writes: whole files with open()'s permissions and no temporary left behind, the previous
file kept when a write fails, OS errors that name the file and the fix, damaged JSON named, outputs
that are inputs refused, unwritable folders refused before any work."""

import errno
import os
import stat

import pytest
import torch

from lightning_slt.atomic import (
    check_not_inputs,
    check_writable,
    is_temporary,
    read_json,
    write_bytes,
    write_json,
    write_text,
    write_torch,
)


def test_files_are_written_whole_in_new_folders_with_the_mode_open_gives(tmp_path):
    target = tmp_path / "new" / "deeper" / "file.bin"
    write_bytes(target, [b"ab", b"", b"cd"])
    assert target.read_bytes() == b"abcd" and os.listdir(target.parent) == ["file.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]})
    assert (tmp_path / "m.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1.5\n  ]\n}\n'  # keys in order, newline
    write_torch(tmp_path / "t.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.arange(3))


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "last.ckpt"
    write_text(target, "previous")
    with pytest.raises(Exception):
        write_torch(target, {"unpicklable": lambda: None})
    assert target.read_text() == "previous" and os.listdir(tmp_path) == ["last.ckpt"]


def test_temporary_names_are_recognised():
    assert is_temporary(".last.ckpt.k2j4h1.tmp") and is_temporary(".x.tmp")
    assert not is_temporary("last.ckpt") and not is_temporary("x.tmp") and not is_temporary(".hidden")


def _full_disk():
    yield b"half"
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_full_disk():
    """torch's zip writer: a RuntimeError raised while handling the OS error."""
    yield b"half"
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")


@pytest.mark.parametrize("parts", [_full_disk, _torch_full_disk])
def test_a_full_disk_names_the_file_and_what_to_do(tmp_path, parts):
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as info:
        write_bytes(target, parts())
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == (f"[Errno {errno.ENOSPC}] cannot write {target}: No space left on device; free space on "
                               "that file system or write to another one (an earlier version of the file, if any, is "
                               "unchanged)")
    assert os.listdir(tmp_path) == []


def test_damaged_json_is_named_with_its_line(tmp_path):
    (tmp_path / "bad.json").write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(ValueError, match=r"bad.json is damaged, not valid JSON \(line 2: Expecting value\)$"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match=r"latin1.json is damaged, not valid JSON \(invalid UTF-8 \(invalid "
                                         r"continuation byte\)\)"):
        read_json(tmp_path / "latin1.json")
    write_json(tmp_path / "ok.json", [1, {"x": None}])
    assert read_json(tmp_path / "ok.json") == [1, {"x": None}]


def test_an_output_that_is_an_input_is_refused_by_path_or_by_inode(tmp_path):
    source = tmp_path / "best.ckpt"
    source.write_bytes(b"x")
    os.link(source, tmp_path / "alias.ckpt")
    with pytest.raises(ValueError) as info:
        check_not_inputs({"--out": str(tmp_path / "alias.ckpt")}, {"checkpoint": str(source)})
    assert str(info.value) == (f"refusing to write --out {tmp_path / 'alias.ckpt'}: it is the checkpoint this command "
                               "reads, and writing it would destroy that input; choose another output path")
    with pytest.raises(ValueError, match="it is the checkpoint this command reads"):
        check_not_inputs({"--out": str(tmp_path / "sub" / ".." / "best.ckpt")}, {"checkpoint": str(source)})
    check_not_inputs({"--out": str(tmp_path / "new.ticket"), "--report": None}, {"checkpoint": str(source), "x": None})


def test_a_folder_that_cannot_hold_files_is_refused_before_any_work(tmp_path):
    check_writable(tmp_path / "not" / "yet" / "made", "the output folder", "choose another")  # its parent is probed
    assert os.listdir(tmp_path) == []  # the probe is removed, nothing is created
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        check_writable(blocker / "runs", "the checkpoint folder", "make it writable")
    assert info.value.errno == errno.ENOTDIR
    assert str(info.value) == (f"[Errno {errno.ENOTDIR}] the checkpoint folder {blocker / 'runs'} is not writable "
                               f"({blocker}: Not a directory); make it writable")
