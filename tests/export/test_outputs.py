"""Output paths of translate/export, checked before any work: a folder, a path under a file, a
path inside an input folder, one of the inputs, a read-only folder are refused naming the path and
the fix; an existing file and missing parent folders are fine (replaced / created later, as before),
and a check creates nothing."""

import subprocess

import pytest

from lightning_slt.export.outputs import check_output_file


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_new_or_existing_file_and_missing_folders_pass_and_nothing_is_created(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    before = _files(tmp_path)
    check_output_file("--output", tmp_path / "old.txt", {"--input": tmp_path / "in.txt"})
    check_output_file("--output", tmp_path / "new" / "sub" / "out.txt", {"--input": tmp_path / "in.txt"})
    check_output_file("--output", None, {"--input": tmp_path / "in.txt"})  # stdout
    assert _files(tmp_path) == before


REFUSED = {  # id: (path under tmp_path, what the message says)
    "a_folder": ("folder", "refusing to write --output {p}: it is a folder; give the path of a file"),
    "under_a_file": ("file.txt/out.txt", "cannot write --output {p}: {t}/file.txt is a file, not a folder"),
    "deep_under_a_file": ("file.txt/a/b/out.txt", "cannot write --output {p}: {t}/file.txt is a file, not a folder"),
    "the_input": ("file.txt", "refusing to write --output {p}: it is the --input this command reads"),
    "inside_an_input_folder": ("ckpt/x.ticket", "refusing to write --output {p}: it is inside the checkpoint {t}/ckpt, "
                                                "a folder this command reads"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_before_any_work_naming_the_path_and_the_fix(case, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "file.txt").write_text("a sentence\n")
    relative, says = REFUSED[case]
    path = tmp_path / relative
    before = _files(tmp_path)
    with pytest.raises(ValueError) as info:
        check_output_file("--output", path, {"--input": tmp_path / "file.txt", "checkpoint": tmp_path / "ckpt"})
    assert says.format(p=path, t=tmp_path) in str(info.value), str(info.value)
    assert _files(tmp_path) == before


def test_a_read_only_folder_is_refused_naming_it(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        with pytest.raises(OSError) as info:
            check_output_file("--output", folder / "sub" / "out.txt", {})
        assert (f"--output {folder / 'sub' / 'out.txt'}: the folder {folder} is not writable ({folder}: Read-only file "
                "system); choose a writable folder for --output") in str(info.value), str(info.value)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
