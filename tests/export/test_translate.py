"""``lightning-slt translate``: a ticket or checkpoint translates a file or stdin line for line,
dense or sparse alike, and bad arguments are refused."""

import json

import pytest

from lightning_slt.export.checkpoint import export_checkpoint, load_ticket
from lightning_slt.export.cli import export_main
from lightning_slt.export.translate import translate_main
from lightning_slt.model.module import TranslationModule

from ._train import SENTENCES


def test_export_and_translate_commands(pruned_checkpoint, tmp_path, capsys) -> None:
    ticket_path = tmp_path / "m.ticket"
    assert export_main([str(pruned_checkpoint), "--out", str(ticket_path), "--values", "fp32"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["bytes"]["file"] == ticket_path.stat().st_size
    assert printed["bytes"]["checkpoint"] == pruned_checkpoint.stat().st_size

    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    expected = TranslationModule.load_from_checkpoint(pruned_checkpoint, map_location="cpu").translate(
        SENTENCES, beam_size=1)
    for mode in ("off", "on", "auto"):
        out = tmp_path / f"out-{mode}.txt"
        report = tmp_path / f"report-{mode}.json"
        argv = ["--ticket", str(ticket_path), "--input", str(source), "--output", str(out), "--beam", "1",
                "--sparse", mode, "--batch-tokens", "40", "--report", str(report)]
        assert translate_main(argv) == 0
        assert out.read_text(encoding="utf-8").split("\n")[:-1] == expected
        layers = json.loads(report.read_text())["layers"]
        assert (layers == []) == (mode == "off")
    out = tmp_path / "out-ckpt.txt"
    assert translate_main(["--checkpoint", str(pruned_checkpoint), "--input", str(source), "--output", str(out),
                           "--beam", "1", "--sparse", "on"]) == 0
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == expected


def test_translate_reads_stdin_and_writes_stdout(pruned_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    import io
    import sys

    ticket_path = tmp_path / "m.ticket"
    export_checkpoint(pruned_checkpoint, ticket_path)
    expected = load_ticket(ticket_path).translate(SENTENCES, beam_size=2)
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(SENTENCES) + "\n").encode("utf-8")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert translate_main(["--ticket", str(ticket_path), "--beam", "2", "--sparse", "on"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == expected


def test_translate_needs_exactly_one_model_source(capsys) -> None:
    with pytest.raises(SystemExit):
        translate_main(["--input", "x.txt"])
    assert "one of the arguments --ticket --checkpoint is required" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--batch-tokens must be >= 1, got 0"):
        translate_main(["--ticket", "m.ticket", "--batch-tokens", "0"])


@pytest.fixture
def never_loaded(monkeypatch):
    """Fails the test if the command loads a model: what is checked here must fail before."""
    import lightning_slt.export.translate as translate

    def load_module(*args):
        raise AssertionError("the model was loaded before the bad path was refused")

    monkeypatch.setattr(translate, "load_module", load_module)


OUTPUT_PATHS = {  # id: (option, path under tmp_path, what the message says)
    "output_under_a_file": ("--output", "in.txt/out.txt", "cannot write --output {p}: {t}/in.txt is a file, not a "
                                                          "folder, so nothing can be written under it"),
    "output_is_a_folder": ("--output", "folder", "refusing to write --output {p}: it is a folder"),
    "report_under_a_file": ("--report", "in.txt/r.json", "cannot write --report {p}: {t}/in.txt is a file"),
}


@pytest.mark.parametrize("case", OUTPUT_PATHS)
def test_output_paths_are_refused_before_the_model_is_loaded(case, never_loaded, tmp_path):
    option, relative, says = OUTPUT_PATHS[case]
    (tmp_path / "in.txt").write_text("A dog.\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "m.ticket").write_bytes(b"never read")
    path = tmp_path / relative
    with pytest.raises(SystemExit) as info:
        translate_main(["--ticket", str(tmp_path / "m.ticket"), "--input", str(tmp_path / "in.txt"), option, str(path)])
    assert str(info.value.code).startswith("lightning-slt translate: ")
    assert says.format(p=path, t=tmp_path) in str(info.value.code), info.value.code


def test_model_files_missing_or_given_to_the_other_option_are_one_line(pruned_checkpoint, never_loaded, tmp_path):
    ticket = tmp_path / "m.ticket"
    export_checkpoint(pruned_checkpoint, ticket)
    (tmp_path / "in.txt").write_text("A dog.\n")
    cases = {  # arguments: what the message says
        ("--ticket", str(tmp_path / "no.ticket")): f"--ticket {tmp_path / 'no.ticket'}: no such file; give the file "
                                                   "written by `lightning-slt export`",
        ("--checkpoint", str(tmp_path / "no.ckpt")): f"--checkpoint {tmp_path / 'no.ckpt'}: no such file",
        ("--ticket", str(pruned_checkpoint)): f"--ticket {pruned_checkpoint} is a Lightning checkpoint (a zip archive), "
                                              f"not a ticket file: pass it as --checkpoint {pruned_checkpoint}",
        ("--checkpoint", str(ticket)): f"--checkpoint {ticket} is a ticket file (written by `lightning-slt export`), "
                                       f"not a Lightning checkpoint: pass it as --ticket {ticket}",
    }
    for args, says in cases.items():
        with pytest.raises(SystemExit) as info:
            translate_main([*args, "--input", str(tmp_path / "in.txt")])
        assert str(info.value.code).startswith(f"lightning-slt translate: {says}"), info.value.code
    with pytest.raises(SystemExit) as info:
        translate_main(["--ticket", str(ticket), "--input", str(tmp_path / "none.txt")])
    assert str(info.value.code) == (f"lightning-slt translate: --input {tmp_path / 'none.txt'}: no such file; give a "
                                    "text file with one sentence per line, or leave --input out to read standard input")


def test_a_damaged_ticket_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "in.txt").write_text("A dog.\n")
    bad = tmp_path / "bad.ticket"
    bad.write_bytes(b"LSLTTKT\x00" + b"\x01" * 10)
    with pytest.raises(SystemExit) as info:
        translate_main(["--ticket", str(bad), "--input", str(tmp_path / "in.txt")])
    assert str(info.value.code).startswith(f"lightning-slt translate: {bad}: ticket is truncated"), info.value.code


@pytest.mark.parametrize("stream", ["stdout", "stdin"])
def test_a_closed_standard_stream_without_its_option_is_refused_first(stream, never_loaded, monkeypatch, tmp_path):
    import sys

    (tmp_path / "in.txt").write_text("A dog.\n")
    (tmp_path / "m.ticket").write_bytes(b"LSLTTKT\x00")
    monkeypatch.setattr(sys, stream, None)  # what Python gives a process started with >&- or <&-
    args = ["--ticket", str(tmp_path / "m.ticket")]
    args += ["--input", str(tmp_path / "in.txt")] if stream == "stdout" else ["--output", str(tmp_path / "out.txt")]
    name = "output" if stream == "stdout" else "input"
    with pytest.raises(SystemExit) as info:
        translate_main(args)
    assert str(info.value.code) == (f"lightning-slt translate: standard {name} is closed, and the command has no "
                                    f"--{name}: pass --{name} FILE")


def test_a_dash_means_the_standard_streams(pruned_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    import io
    import sys

    ticket = tmp_path / "m.ticket"
    export_checkpoint(pruned_checkpoint, ticket)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"A dog.\nTwo men.\n"), encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    assert translate_main(["--ticket", str(ticket), "--input", "-", "--output", "-", "--beam", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 2 and not (tmp_path / "-").exists()  # no file named "-"
