"""Bad inputs, round three: the text a model trains on, and the files translate and export read
and write. Each case says what it must say (or do); each is one bad input of the figures line.

Text the model trains on and is scored on:
- a training pair with an empty or blank side (both sides, the source, the target) is dropped and
  counted in the "train: kept K of N pairs" line with its line number; it was trained on silently;
- validation/test keep such pairs (scores stay over the whole split, hypotheses line-aligned: an
  empty source still gets its output line), with a warning naming the lines;
- training files of blank lines only: "no text in the training files" (was sentencepiece's
  ``all_chars_count > 0``); blank lines at the end of one file: the misalignment error says so;
- one file given for both sides of train_files: refused (it trained the identity);
- a byte-order mark in the middle of a file (files joined with ``cat``) and CRLF in one file, LF in
  the other: read as the same sentences as clean files.

translate and export: every output path is checked before a model is loaded or a checkpoint read
(the output's parent a file: "File exists" after 55 s before; a folder; a read-only folder; an
output inside a distributed checkpoint folder), and so are the model files, the input and the
standard streams; a winning ticket is translated and exported with a warning; a full disk names
the file or folder and the fix. Input text: empty, binary, UTF-16 with and without a byte-order
mark, a 1 MB line, a pipe, "-" for the standard streams. Two ``WeightRewind`` of one step: one error naming both, before training.

Budget: ~60 s.
"""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import threading
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from lightning_slt import GradualMagnitudePruning, WeightRewind, cli
from lightning_slt.data import MisalignedCorpusError
from lightning_slt.export import export_checkpoint
from lightning_slt.export.winning_ticket import export_winning_ticket

from .tiny import StepCounter, cli_config, file_states, make_module, make_trainer

REWIND_STEP = 2


@pytest.fixture(scope="module")
def model(tmp_path_factory, data_root, spm_cache) -> dict[str, Path]:
    """A tiny run pruned to 50 % that recorded θ2: its checkpoint, ticket and winning ticket."""
    from .tiny import make_data

    root = tmp_path_factory.mktemp("model")
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(root, max_steps=4, callbacks=[GradualMagnitudePruning(0.5, end_step=2, frequency=1),
                                                        WeightRewind(step=REWIND_STEP)])
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(root / "model.ckpt")
    export_checkpoint(root / "model.ckpt", root / "model.ticket")
    export_winning_ticket(root / "model.ckpt", root / "winning.ticket")
    return {"checkpoint": root / "model.ckpt", "ticket": root / "model.ticket", "winning": root / "winning.ticket"}


@pytest.fixture(scope="module")
def corpus(data_root) -> tuple[list[str], list[str]]:
    """The first 96 Multi30k en-de training pairs (the tiny runs' subset)."""
    read = [gzip.open(data_root / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8").read().split("\n")[:96]
            for lang in ("en", "de")]
    return read[0], read[1]


def _files(folder: Path, src: list[str], tgt: list[str], name: str = "train") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in (("en", src), ("de", tgt)):
        (folder / f"{name}.{lang}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return [str(folder / f"{name}.en"), str(folder / f"{name}.de")]


def _message(info: pytest.ExceptionInfo) -> str:
    return str(info.value.code if isinstance(info.value, SystemExit) else info.value)


# ----------------------------------------------------------------------------- the text trained on


EMPTY_SIDES = {"both_sides_empty": ("", ""), "source_empty": ("", None), "target_blank": (None, " \t ")}


@pytest.mark.parametrize("case", EMPTY_SIDES)
def test_training_drops_a_pair_with_an_empty_side_and_counts_it(case, corpus, make_data, tmp_path, caplog, tally):
    src, tgt = list(corpus[0]), list(corpus[1])
    new_src, new_tgt = EMPTY_SIDES[case]
    src[6] = src[6] if new_src is None else new_src
    tgt[6] = tgt[6] if new_tgt is None else new_tgt
    data = make_data(train_files=_files(tmp_path, src, tgt))
    with caplog.at_level(logging.INFO):
        pairs = data.dataset("train")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train: kept")]
    assert said and said[0].endswith("1 with an empty source or target line (line(s) 7)"), said
    assert 6 not in pairs.line_numbers.tolist() and 5 in pairs.line_numbers.tolist()
    assert all(len(pairs[i].src_ids) and len(pairs[i].tgt_ids) for i in range(len(pairs)))
    tally("bad_inputs")


def test_test_split_keeps_empty_sides_one_hypothesis_per_line_with_a_warning(model, make_data, tmp_path, tally):
    src = ["A dog runs.", "", "Two men sleep.", "A cat."]
    tgt = ["Ein Hund rennt.", "Ein Mann.", "  ", "Eine Katze."]
    files = _files(tmp_path / "corpus", src, tgt, "test")
    data = make_data(test_files=files, test_subset=None)
    module = make_module(data, output_dir=str(tmp_path / "out"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path / "run").test(module, datamodule=data, ckpt_path=str(model["checkpoint"]), verbose=False)
    assert (tmp_path / "out" / "hypotheses_test.txt").read_text(encoding="utf-8").count("\n") == 4
    said = [str(w.message) for w in caught if "empty source or target" in str(w.message)]
    assert said and said[0].startswith(f"test ({files[0]}, {files[1]}): 2 of 4 pairs have an empty source or target "
                                       "line (line(s) 2, 3); they are kept"), said
    tally("bad_inputs")


def test_training_files_of_blank_lines_only_say_there_is_no_text(make_data, tmp_path, tally):
    files = _files(tmp_path, ["", " ", "\t"] * 10, [" "] * 30)
    before = file_states(tmp_path)
    with pytest.raises(ValueError) as info:
        make_data(train_files=files).vocab_size
    assert f"no text in the training files {files[0]} and {files[1]}: all 60 lines are empty or only spaces" in str(
        info.value), info.value
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_blank_lines_at_the_end_of_one_file_are_named_in_the_misalignment(corpus, make_data, tmp_path, tally):
    files = _files(tmp_path, corpus[0][:20], corpus[1][:20] + ["", ""])
    with pytest.raises(MisalignedCorpusError) as info:
        make_data(train_files=files).vocab_size
    assert f"The last 2 line(s) of {files[1]} are empty: delete them" in str(info.value), info.value
    tally("bad_inputs")


def test_a_mid_file_byte_order_mark_and_mixed_line_endings_read_as_clean_text(corpus, make_data, tmp_path, tally):
    src, tgt = corpus[0][:40], corpus[1][:40]
    clean = make_data(train_files=_files(tmp_path / "clean", src, tgt), train_subset=40)
    folder = tmp_path / "joined"
    folder.mkdir()
    halves = ["\ufeff" + "".join(line + "\r\n" for line in part) for part in (src[:20], src[20:])]
    (folder / "train.en").write_bytes("".join(halves).encode())  # `cat` of two Windows files: CRLF, a BOM each
    (folder / "train.de").write_text("".join(line + "\n" for line in tgt), encoding="utf-8")
    joined = make_data(train_files=[str(folder / "train.en"), str(folder / "train.de")], train_subset=40,
                       spm_model=str(clean.tokenizer.path))
    assert len(joined.dataset("train")) == len(clean.dataset("train"))
    for i in range(len(clean.dataset("train"))):
        assert joined.dataset("train")[i].src_ids.tolist() == clean.dataset("train")[i].src_ids.tolist()
    tally("bad_inputs", 2)


def test_one_file_for_both_sides_of_the_training_pairs_is_refused(corpus, make_data, tmp_path, tally):
    files = _files(tmp_path, corpus[0][:20], corpus[1][:20])  # a copy-paste slip: it trained the identity silently
    with pytest.raises(ValueError) as info:
        make_data(train_files=[files[0], files[0]])
    assert str(info.value) == (f"train_files names one file for both sides ({files[0]} and {files[0]}): pass [en file, "
                               "de file], the source sentences and their translations")
    tally("bad_inputs")


# ----------------------------------------------------------------------------- translate


@pytest.fixture
def never_loaded(monkeypatch):
    import lightning_slt.export.translate as translate

    def load_module(*args):
        raise AssertionError("the model was loaded before the bad path was refused")

    monkeypatch.setattr(translate, "load_module", load_module)


def _translate(model: dict[str, Path], *args: str, ticket: str = "ticket") -> int:
    return cli.main(["translate", "--ticket", str(model[ticket]), "--sparse", "off", "--beam", "1", *args])


def _mount(folder: Path, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}): needs root")


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


TRANSLATE_OUTPUTS = {  # id: (option, path under tmp_path, what the message says)
    "output_under_a_file": ("--output", "in.txt/out.txt", "cannot write --output {p}: {t}/in.txt is a file, not a "
                                                          "folder, so nothing can be written under it"),
    "output_is_a_folder": ("--output", "folder", "refusing to write --output {p}: it is a folder; give the path of a "
                                                 "file"),
    "output_is_a_symlink_to_the_input": ("--output", "link.txt", "refusing to write --output {p}: it is the --input "
                                                                 "this command reads"),
    "report_under_a_file": ("--report", "in.txt/report.json", "cannot write --report {p}: {t}/in.txt is a file"),
}


@pytest.mark.parametrize("case", TRANSLATE_OUTPUTS)
def test_translate_refuses_an_output_path_before_loading_the_model(case, model, never_loaded, tmp_path, tally):
    option, relative, says = TRANSLATE_OUTPUTS[case]
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.txt").symlink_to(tmp_path / "in.txt")
    path = tmp_path / relative
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        _translate(model, "--input", str(tmp_path / "in.txt"), option, str(path))
    assert says.format(p=path, t=tmp_path) in _message(info), _message(info)
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_translate_refuses_a_read_only_folder_before_loading_the_model(model, never_loaded, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    folder = tmp_path / "ro"
    _mount(folder, "ro", "size=64k")
    try:
        with pytest.raises(SystemExit) as info:
            _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(folder / "out.txt"))
        assert (f"--output {folder / 'out.txt'}: the folder {folder} is not writable ({folder}: Read-only file system); "
                "choose a writable folder for --output") in _message(info), _message(info)
    finally:
        _umount(folder)
    tally("bad_inputs")


def test_translate_creates_missing_folders_of_its_output_as_before(model, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\nTwo men.\n")
    out = tmp_path / "new" / "sub" / "out.txt"
    assert _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(out)) == 0
    assert out.read_text().count("\n") == 2
    tally("bad_inputs")


def test_translate_on_a_full_disk_is_one_line_naming_the_file(model, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\n" * 50)
    disk = tmp_path / "disk"
    _mount(disk, "size=16k")
    try:
        (disk / "filler").write_bytes(b"\0" * 16384)  # the disk is full, creating a file still works
        with pytest.raises(SystemExit) as info:
            _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(disk / "out.txt"))
        assert (f"lightning-slt translate: [Errno 28] cannot write {disk / 'out.txt'}: No space left on device; free "
                "space on that file system or write to another one") in _message(info), _message(info)
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    finally:
        _umount(disk)
    tally("bad_inputs")


MODEL_FILES = {  # id: (option, which file (or a missing one), what the message says)
    "ticket_missing": ("--ticket", None, "--ticket {p}: no such file; give the file written by `lightning-slt export`"),
    "checkpoint_given_as_ticket": ("--ticket", "checkpoint", "--ticket {p} is a Lightning checkpoint (a zip archive), "
                                                             "not a ticket file: pass it as --checkpoint {p}"),
    "ticket_given_as_checkpoint": ("--checkpoint", "ticket", "--checkpoint {p} is a ticket file (written by "
                                                             "`lightning-slt export`), not a Lightning checkpoint: "
                                                             "pass it as --ticket {p}"),
    "damaged_ticket": ("--ticket", "damaged", "{p}: ticket is truncated"),
}


@pytest.mark.parametrize("case", MODEL_FILES)
def test_translate_says_what_is_wrong_with_the_model_file_in_one_line(case, model, tmp_path, tally):
    option, which, says = MODEL_FILES[case]
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    path = model.get(which, tmp_path / "absent.ticket")
    if which == "damaged":
        path = tmp_path / "damaged.ticket"
        path.write_bytes(model["ticket"].read_bytes()[:1000])
    with pytest.raises(SystemExit) as info:
        cli.main(["translate", option, str(path), "--input", str(tmp_path / "in.txt")])
    assert _message(info).startswith("lightning-slt translate: " + says.format(p=path)), _message(info)
    tally("bad_inputs")


INPUTS = {  # id: (input bytes or a path name, what the message says)
    "missing": (None, "--input {p}: no such file; give a text file with one sentence per line, or leave --input out"),
    "a_folder": ("folder", "{p} is a folder, not a text file"),
    "binary": (bytes(range(256)) * 8, "{p}, line 1: a NUL byte (\\x00), which text never holds"),
    "utf16_with_bom": ("A dog runs.\nTwo men.\n".encode("utf-16"), "{p}: UTF-16 text (it starts with a UTF-16 "
                                                                  "byte-order mark), not UTF-8"),
    "utf16_without_bom": ("A dog runs.\nTwo men.\n".encode("utf-16-le"), "{p}, line 1: a NUL byte (\\x00), which text "
                                                                         "never holds: this is UTF-16 text without a "
                                                                         "byte-order mark"),
}


@pytest.mark.parametrize("case", INPUTS)
def test_translate_refuses_an_input_that_is_not_text_before_loading_the_model(case, model, never_loaded, tmp_path,
                                                                               tally):
    data, says = INPUTS[case]
    path = tmp_path / "in.txt"
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif data == "folder":
        path.mkdir()
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        _translate(model, "--input", str(path), "--output", str(tmp_path / "out.txt"))
    assert _message(info).startswith("lightning-slt translate: " + says.format(p=path)), _message(info)
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_translate_an_empty_input_gives_an_empty_output(model, tmp_path, tally):
    (tmp_path / "in.txt").write_bytes(b"")
    assert _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.txt")) == 0
    assert (tmp_path / "out.txt").read_bytes() == b""
    tally("bad_inputs")


def test_translate_a_1_mb_line_is_one_output_line_with_a_warning(model, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog.\n" + "a dog runs " * 95_000 + "\nTwo men.\n")  # 1.04 MB on line 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.txt")) == 0
    assert (tmp_path / "out.txt").read_text().count("\n") == 3
    said = [str(w.message) for w in caught if "sentencepiece pieces" in str(w.message)]
    assert len(said) == 1 and "line(s) 2 of 3 have more than 63 sentencepiece pieces" in said[0], said
    tally("bad_inputs")


def test_translate_reads_a_pipe_as_its_input(model, tmp_path, tally):
    fifo = tmp_path / "pipe"  # what `--input <(zcat test.en.gz)` hands over
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("A dog runs.\nTwo men.\n"))
    writer.start()
    try:
        code = _translate(model, "--input", str(fifo), "--output", str(tmp_path / "out.txt"))
    finally:
        if writer.is_alive():
            fifo.read_bytes()
        writer.join()
    assert code == 0 and (tmp_path / "out.txt").read_text().count("\n") == 2
    tally("bad_inputs")


def test_translate_takes_a_dash_for_the_standard_streams_not_a_file_named_dash(model, tmp_path, monkeypatch, capsys,
                                                                             tally):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"A dog runs.\nTwo men.\n"), encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # `--output -` wrote a file named "-" here; `--input -` was "corpus file not found"
    assert _translate(model, "--input", "-", "--output", "-") == 0
    assert capsys.readouterr().out.count("\n") == 2 and list(tmp_path.iterdir()) == []
    tally("bad_inputs")


@pytest.mark.parametrize("argv", [["--beam", "0"], ["--beam", "-2"], ["--batch-tokens", "0"]],
                         ids=["beam_0", "beam_negative", "batch_tokens_0"])
def test_translate_refuses_a_search_setting_out_of_range(argv, model, never_loaded, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    with pytest.raises(SystemExit) as info:
        cli.main(["translate", "--ticket", str(model["ticket"]), "--input", str(tmp_path / "in.txt"), *argv])
    assert _message(info) == {"--beam": f"--beam must be >= 1 (1 = greedy), got {argv[1]}",
                              "--batch-tokens": f"--batch-tokens must be >= 1, got {argv[1]}"}[argv[0]]
    tally("bad_inputs")


def test_translate_with_stdout_closed_is_refused_before_the_work(model, never_loaded, monkeypatch, tmp_path, tally):
    import sys

    (tmp_path / "in.txt").write_text("A dog runs.\n")
    monkeypatch.setattr(sys, "stdout", None)  # `lightning-slt translate ... >&-`: the translations had nowhere to go
    with pytest.raises(SystemExit) as info:
        _translate(model, "--input", str(tmp_path / "in.txt"))
    assert _message(info) == ("lightning-slt translate: standard output is closed, and the command has no --output: "
                              "pass --output FILE")
    tally("bad_inputs")


def test_translating_a_winning_ticket_warns_it_is_the_start_of_a_round(model, tmp_path, tally):
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _translate(model, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.txt"),
                          ticket="winning") == 0
    said = [str(w.message) for w in caught if "winning ticket" in str(w.message)]
    assert said and said[0].startswith(f"{model['winning']} is a winning ticket (θ{REWIND_STEP} ⊙ m"), said
    assert "the start of the next pruning round, not a trained model" in said[0]
    tally("bad_inputs")


# ----------------------------------------------------------------------------- export


@pytest.fixture
def never_read(monkeypatch):
    import lightning_slt.export.checkpoint as checkpoint
    import lightning_slt.export.ctranslate2 as ctranslate2

    def read(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the bad --out was refused")

    monkeypatch.setattr(checkpoint, "read_module_checkpoint", read)
    monkeypatch.setattr(ctranslate2, "load_module", read)


EXPORT_OUTS = {  # id: (format, --out under tmp_path, what the message says)
    "ticket_under_a_file": ("ticket", "notes.txt/m.ticket", "cannot write --out {p}: {t}/notes.txt is a file, not a "
                                                            "folder"),
    "ticket_is_a_folder": ("ticket", "folder", "refusing to write --out {p}: it is a folder"),
    "ctranslate2_under_a_file": ("ctranslate2", "notes.txt/ct2", "cannot write --out {p}: {t}/notes.txt is a file"),
}


@pytest.mark.parametrize("case", EXPORT_OUTS)
def test_export_refuses_an_out_path_before_reading_the_checkpoint(case, model, never_read, tmp_path, tally):
    form, relative, says = EXPORT_OUTS[case]
    if form == "ctranslate2":
        pytest.importorskip("ctranslate2")
    (tmp_path / "notes.txt").write_text("notes\n")
    (tmp_path / "folder").mkdir()
    out = tmp_path / relative
    before = file_states(tmp_path, model["checkpoint"])
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(model["checkpoint"]), "--out", str(out), "--format", form])
    assert says.format(p=out, t=tmp_path) in _message(info), _message(info)
    assert file_states(tmp_path, model["checkpoint"]) == before
    tally("bad_inputs")


def test_export_to_ctranslate2_on_a_full_disk_names_the_folder_and_leaves_nothing(model, tmp_path, tally):
    pytest.importorskip("ctranslate2")
    disk = tmp_path / "disk"
    _mount(disk, "size=64k")  # the model folder needs ~350 KB
    try:
        with pytest.raises(SystemExit) as info:
            cli.main(["export", str(model["checkpoint"]), "--format", "ctranslate2", "--out", str(disk / "ct2")])
        assert _message(info) == (f"lightning-slt export: [Errno 28] cannot write the CTranslate2 model to {disk / 'ct2'}"
                                  f": No space left on device; free space on that file system, or pass --out on "
                                  f"another one (nothing was left behind in {disk})"), _message(info)
        assert list(disk.iterdir()) == []
    finally:
        _umount(disk)
    tally("bad_inputs")


def test_export_refuses_an_out_inside_a_distributed_checkpoint_folder(model, tmp_path, tally):
    from torch.distributed.checkpoint.format_utils import torch_save_to_dcp

    checkpoint = torch.load(model["checkpoint"], weights_only=True)
    folder = tmp_path / "last.ckpt"  # as FSDP2's ModelParallelStrategy writes it: shards + meta.pt
    torch.save({"state_dict": checkpoint.pop("state_dict")}, tmp_path / "shards.pt")
    torch_save_to_dcp(tmp_path / "shards.pt", folder)
    torch.save(checkpoint, folder / "meta.pt")
    before = file_states(folder)
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(folder), "--out", str(folder / "model.ticket")])
    assert (f"refusing to write --out {folder / 'model.ticket'}: it is inside the checkpoint {folder}, a folder this "
            "command reads") in _message(info), _message(info)
    assert file_states(folder) == before
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "model.ticket")]) == 0  # beside it: fine
    tally("bad_inputs")


def test_export_of_a_ticket_says_it_already_is_one(model, tmp_path, tally):
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(model["ticket"]), "--out", str(tmp_path / "copy.ticket")])
    assert _message(info).startswith(f"lightning-slt export: {model['ticket']} is already a ticket file, the format "
                                     "this command writes; copy it to change its name, or pass --format ctranslate2")
    assert not (tmp_path / "copy.ticket").exists()
    tally("bad_inputs")


def test_export_to_an_unknown_format_lists_the_formats(model, tmp_path, capsys, tally):
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(model["checkpoint"]), "--out", str(tmp_path / "m.onnx"), "--format", "onnx"])
    assert info.value.code == 2
    assert "argument --format: invalid choice: 'onnx' (choose from 'ticket', 'ctranslate2')" in capsys.readouterr().err
    tally("bad_inputs")


def test_exporting_a_winning_ticket_to_ctranslate2_warns_it_is_the_start_of_a_round(model, tmp_path, capsys, tally):
    pytest.importorskip("ctranslate2")
    with pytest.warns(UserWarning, match=rf"is a winning ticket \(θ{REWIND_STEP} ⊙ m.*not a trained model: the "
                                         "CTranslate2 model will hold the weights of that step"):
        assert cli.main(["export", str(model["winning"]), "--format", "ctranslate2", "--out", str(tmp_path / "ct2")]) == 0
    tally("bad_inputs")


# ----------------------------------------------------------------------------- two rewinds of one step


def test_two_rewinds_of_one_step_from_two_config_files_are_one_error_before_training(data_root, spm_cache, tmp_path,
                                                                                     tally):
    config = cli_config(tmp_path, data_root, spm_cache)
    rounds = []
    for name, init_args in (("record", {"step": 2}), ("restore", {"step": 2, "restore_optimizer": True})):
        rounds += ["--config", str(tmp_path / f"{name}.yaml")]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": [
            {"class_path": "lightning_slt.WeightRewind", "init_args": init_args}]}}))
    with pytest.raises(ValueError) as info:
        cli.main(["fit", "--config", str(config), *rounds])
    assert str(info.value).startswith("2 WeightRewind callbacks record step 2: WeightRewind(step=2, restore_optimizer="
                                      "False), WeightRewind(step=2, restore_optimizer=True);"), info.value
    assert "keep one WeightRewind per step" in str(info.value)
    assert not (tmp_path / "run" / "ckpt").exists()  # no training step, no checkpoint
    tally("bad_inputs")


def test_two_rewinds_of_one_step_in_a_trainer_are_one_error_before_training(make_data, tmp_path, tally):
    data, counter = make_data(), StepCounter()
    trainer = make_trainer(tmp_path, max_steps=4, callbacks=[WeightRewind(step=1), WeightRewind(step=1), counter])
    with pytest.raises(ValueError, match=r"^2 WeightRewind callbacks record step 1: .*keep one WeightRewind per step"):
        trainer.fit(make_module(data), datamodule=data)
    assert counter.steps == 0
    tally("bad_inputs")
