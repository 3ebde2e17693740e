"""Commands that read and write files (translate, export, test) keep their outputs aligned with
their inputs and never write over an input.

- one output line per input line, for any UTF-8 content: empty lines, Unicode line separators
  (which ``str.splitlines`` used to split on), CRLF, a byte-order mark, a lone CR;
- a line too long for the model is translated from its first pieces with a warning naming it;
- an output path that is one of the command's inputs (same path, or a hard link) is refused
  before anything is read or written.

Each case is one bad input of the suite's figures line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lightning_slt import cli
from lightning_slt.export import export_checkpoint

from .tiny import REPO_ROOT, file_states, make_module, make_trainer


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, make_data_module) -> dict[str, Path]:
    """A tiny trained checkpoint and its ticket (max_positions 64)."""
    root = tmp_path_factory.mktemp("model")
    data = make_data_module()
    trainer = make_trainer(root, max_steps=4)
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(root / "model.ckpt")
    export_checkpoint(root / "model.ckpt", root / "model.ticket")
    return {"checkpoint": root / "model.ckpt", "ticket": root / "model.ticket"}


@pytest.fixture(scope="module")
def make_data_module(data_root, spm_cache):
    from .tiny import make_data

    return lambda **overrides: make_data(data_root, spm_cache, **overrides)


def _lines_of(path: Path) -> int:
    return path.read_bytes().count(b"\n")


LONG = " ".join(["ein Hund läuft über die Wiese"] * 20)  # far more than 63 pieces
ALIGNMENT_CASES = {  # id: (input bytes, input lines, lines the warning names)
    "empty_lines": (b"A dog runs.\n\n\nTwo men.\n\n", 5, None),
    "only_empty_lines": (b"\n\n\n", 3, None),
    "unicode_line_separators": ("A dog\u2028runs.\nA cat\u0085sleeps.\nOne\x0btwo\x0cthree\x1cfour\n".encode(), 3, None),
    "crlf": (b"A dog runs.\r\nTwo men.\r\n\r\n", 3, None),
    "byte_order_mark": ("\ufeffA dog runs.\nTwo men.\n".encode(), 2, None),
    "lone_cr_inside_a_line": (b"A dog\rruns.\nTwo men.\n", 2, None),
    "no_final_newline": (b"A dog runs.\nTwo men.", 2, None),
    "long_line": (f"A dog.\n{LONG}\nTwo men.\n".encode(), 3, "line(s) 2 of 3 have more than 63 sentencepiece pieces"),
}


@pytest.mark.parametrize("case", ALIGNMENT_CASES)
def test_translate_writes_one_line_per_input_line(case, model_files, tmp_path, tally):
    data, count, warned = ALIGNMENT_CASES[case]
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["translate", "--ticket", str(model_files["ticket"]), "--input", str(source),
                         "--output", str(output), "--sparse", "off", "--beam", "1"])
    assert code == 0 and source.read_bytes() == data
    assert _lines_of(output) == count, output.read_bytes()
    messages = [str(w.message) for w in caught if "sentencepiece pieces" in str(w.message)]
    if warned:
        assert len(messages) == 1 and warned in messages[0] and "split those lines" in messages[0], messages
    else:
        assert not messages
    tally("bad_inputs")


@pytest.mark.slow
def test_translate_from_stdin_keeps_lines_aligned(model_files, tally):
    data = "A dog\u2028runs.\n\nTwo men.\r\n".encode()
    done = subprocess.run([sys.executable, "-m", "lightning_slt.cli", "translate", "--ticket", str(model_files["ticket"]),
                           "--sparse", "off", "--beam", "1"], input=data, capture_output=True, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(b"\n") == 3
    tally("bad_inputs")


def _translate_args(files: dict[str, Path], **paths: Path) -> list[str]:
    args = ["translate", "--ticket", str(paths.pop("ticket", files["ticket"])), "--sparse", "off"]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    return args


def _hard_link(target: Path, link: Path) -> Path:
    os.link(target, link)
    return link


TRANSLATE_OVERWRITES = {  # id: (paths given, the option refused, the input it names)
    "output_is_input": (lambda t, m: {"input": t / "in.txt", "output": t / "in.txt"}, "--output", "--input"),
    "output_is_the_ticket": (lambda t, m: {"input": t / "in.txt", "output": m["ticket"]}, "--output", "--ticket"),
    "report_is_input": (lambda t, m: {"input": t / "in.txt", "report": t / "in.txt"}, "--report", "--input"),
    "report_is_output": (lambda t, m: {"input": t / "in.txt", "output": t / "o.txt", "report": t / "o.txt"},
                         "--report", "--output"),
    "output_is_a_hard_link_of_input": (lambda t, m: {"input": t / "in.txt",
                                                     "output": _hard_link(t / "in.txt", t / "link.txt")},
                                       "--output", "--input"),
    "output_is_input_by_another_path": (lambda t, m: {"input": t / "in.txt", "output": t / "sub" / ".." / "in.txt"},
                                        "--output", "--input"),
}


@pytest.mark.parametrize("case", TRANSLATE_OVERWRITES)
def test_translate_refuses_to_write_over_its_input(case, model_files, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\nTwo men.\n")
    (tmp_path / "sub").mkdir()
    build, option, named = TRANSLATE_OVERWRITES[case]
    paths = build(tmp_path, model_files)
    before = file_states(tmp_path, model_files["ticket"])
    with pytest.raises(SystemExit) as info:
        cli.main(_translate_args(model_files, **paths))
    message = str(info.value.code)
    assert f"refusing to write {option}" in message and f"it is the {named} this command reads" in message, message
    assert "choose another output path" in message
    assert file_states(tmp_path, model_files["ticket"]) == before
    tally("bad_inputs")


def test_translate_refuses_input_that_is_not_utf8(model_files, tmp_path, tally):
    source = tmp_path / "in.txt"
    source.write_bytes(b"A dog runs.\nEin Hund l\xe4uft.\n")
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(_translate_args(model_files, input=source, output=tmp_path / "out.txt"))
    message = str(info.value.code)
    assert f"{source}, line 2: invalid UTF-8" in message and "iconv" in message, message
    assert file_states(tmp_path) == before
    tally("bad_inputs")


@pytest.mark.parametrize("link", [False, True], ids=["same_path", "hard_link"])
@pytest.mark.parametrize("winning", [False, True], ids=["ticket", "winning_ticket"])
def test_export_refuses_to_write_the_ticket_over_its_checkpoint(winning, link, model_files, tmp_path, tally):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(model_files["checkpoint"].read_bytes())
    out = _hard_link(checkpoint, tmp_path / "model.ticket") if link else checkpoint
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(checkpoint), "--out", str(out), *(["--winning-ticket"] if winning else [])])
    message = str(info.value.code)
    assert f"refusing to write --out {out}: it is the checkpoint this command reads" in message, message
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def _test_files(folder: Path, src: list[str], tgt: list[str], names=("test.en", "test.de")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / names[0], folder / names[1]]
    for path, lines in zip(paths, (src, tgt)):
        path.write_text("".join(line + "\n" for line in lines))
    return paths


def test_test_command_writes_one_hypothesis_per_test_line(model_files, make_data_module, tmp_path, tally):
    src = ["A dog runs.", "", "A man\u2028sleeps.", "Two men.", ""]
    tgt = ["Ein Hund rennt.", "", "Ein Mann schläft.", "Zwei Männer.", ""]
    files = _test_files(tmp_path / "corpus", src, tgt)
    data = make_data_module(test_files=[str(p) for p in files], test_subset=None)
    module = make_module(data, output_dir=str(tmp_path / "out"))
    make_trainer(tmp_path / "run").test(module, datamodule=data, ckpt_path=str(model_files["checkpoint"]))
    assert _lines_of(tmp_path / "out" / "hypotheses_test.txt") == len(src)
    tally("bad_inputs")


TEST_OVERWRITES = {  # id: (test file names, what is refused)
    "hypotheses_over_the_source_file": (("hypotheses_test.txt", "test.de"), "test source file"),
    "metrics_over_the_target_file": (("test.en", "metrics_test.json"), "test target file"),
}


@pytest.mark.parametrize("case", TEST_OVERWRITES)
def test_test_command_refuses_outputs_over_its_test_files(case, model_files, make_data_module, tmp_path, tally):
    names, named = TEST_OVERWRITES[case]
    folder = tmp_path / "corpus"
    files = _test_files(folder, ["A dog runs.", "Two men."], ["Ein Hund rennt.", "Zwei Männer."], names)
    data = make_data_module(test_files=[str(p) for p in files], test_subset=None)
    module = make_module(data, output_dir=str(folder))  # the outputs would land beside the test files
    before = file_states(tmp_path)
    with pytest.raises(ValueError) as info:
        make_trainer(tmp_path / "run").test(module, datamodule=data, ckpt_path=str(model_files["checkpoint"]))
    message = str(info.value)
    assert f"it is the {named} this command reads" in message and "set model.output_dir to another folder" in message
    assert file_states(tmp_path) == before
    tally("bad_inputs")
