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
