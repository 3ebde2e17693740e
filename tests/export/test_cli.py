"""``lightning-slt export``'s arguments: options that need another option are refused by the parser
naming both, a ticket-only option with --format ctranslate2 names what applies instead, the output
may not be the input, a missing checkpoint is one line; the quantization list agrees with the
converter's."""

import pytest

from lightning_slt.export.cli import CT2_QUANTIZATIONS, FORMATS, VALUES, build_parser, export_main


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        export_main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_choices_and_the_converters_quantizations():
    from lightning_slt.export.ctranslate2 import QUANTIZATIONS

    assert CT2_QUANTIZATIONS == QUANTIZATIONS  # repeated so that --help does not import the converter
    assert VALUES == {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"} and FORMATS == ("ticket", "ctranslate2")
    args = build_parser().parse_args(["last.ckpt", "--out", "m.ticket"])
    assert (args.format, args.values, args.quantization, args.step, args.wandb_project) == (
        "ticket", "fp32", None, None, "lightning_slt")


@pytest.mark.parametrize(("extra", "says"), [
    (["--step", "3"], "--step needs --winning-ticket (a ticket of the final weights has no rewind step)"),
    (["--artifact-name", "m"], "--artifact-name and --artifact-alias need --wandb-artifact"),
    (["--artifact-alias", "best"], "--artifact-name and --artifact-alias need --wandb-artifact"),
    (["--quantization", "int8"], "--quantization needs --format ctranslate2 (a ticket's weight type is --values)"),
    (["--format", "ctranslate2", "--values", "bf16"], "--values applies to ticket files, not to --format ctranslate2"),
    (["--format", "ctranslate2", "--no-tokenizer"], "--no-tokenizer applies to ticket files, not to --format ctranslate2"),
    (["--values", "int4"], "argument --values: invalid choice: 'int4'"),
], ids=["step", "artifact_name", "artifact_alias", "quantization", "ct2_values", "ct2_no_tokenizer", "values"])
def test_options_without_what_they_need_are_refused_by_the_parser(extra, says, tmp_path, capsys):
    last = _refused([str(tmp_path / "last.ckpt"), "--out", str(tmp_path / "m.ticket"), *extra], capsys)
    assert last.startswith("lightning-slt export: error: ") and says in last
    assert list(tmp_path.iterdir()) == []


def test_the_output_may_not_be_the_checkpoint_and_a_missing_checkpoint_is_one_line(tmp_path):
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(SystemExit, match=f"^lightning-slt export: refusing to write --out {checkpoint}: it is the "
                                         "checkpoint this command reads"):
        export_main([str(checkpoint), "--out", str(checkpoint)])
    assert checkpoint.read_bytes() == b"weights"
    with pytest.raises(SystemExit, match=f"^lightning-slt export: checkpoint not found: {tmp_path / 'absent.ckpt'}$"):
        export_main([str(tmp_path / "absent.ckpt"), "--out", str(tmp_path / "m.ticket")])
    assert not (tmp_path / "m.ticket").exists()


@pytest.fixture
def never_read(monkeypatch):
    """Fails the test if the command reads the checkpoint: what is checked here must fail before."""
    import lightning_slt.export.checkpoint as checkpoint
    import lightning_slt.export.ctranslate2 as ctranslate2

    def read(*args, **kwargs):
        raise AssertionError("the checkpoint was read before the bad --out was refused")

    monkeypatch.setattr(checkpoint, "read_module_checkpoint", read)
    monkeypatch.setattr(ctranslate2, "load_module", read)


OUT_PATHS = {  # id: (format, --out under tmp_path, what the message says)
    "ticket_under_a_file": ("ticket", "notes.txt/m.ticket", "cannot write --out {p}: {t}/notes.txt is a file, not a "
                                                            "folder, so nothing can be written under it"),
    "ticket_is_a_folder": ("ticket", "folder", "refusing to write --out {p}: it is a folder; give the path of a file"),
    "ctranslate2_under_a_file": ("ctranslate2", "notes.txt/ct2", "cannot write --out {p}: {t}/notes.txt is a file"),
    "ctranslate2_is_the_checkpoint": ("ctranslate2", "best.ckpt", "refusing to write --out {p}: it is the checkpoint "
                                                                  "this command reads"),
}


@pytest.mark.parametrize("case", OUT_PATHS)
def test_out_paths_are_refused_before_the_checkpoint_is_read(case, never_read, tmp_path):
    form, relative, says = OUT_PATHS[case]
    if form == "ctranslate2":
        pytest.importorskip("ctranslate2")
    (tmp_path / "best.ckpt").write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("notes\n")
    (tmp_path / "folder").mkdir()
    out = tmp_path / relative
    with pytest.raises(SystemExit) as info:
        export_main([str(tmp_path / "best.ckpt"), "--out", str(out), "--format", form])
    assert str(info.value.code).startswith("lightning-slt export: ") and says.format(p=out, t=tmp_path) in str(
        info.value.code), info.value.code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "folder", "notes.txt"]


def test_a_ticket_given_as_the_checkpoint_is_named_with_what_it_can_become(tmp_path):
    ticket = tmp_path / "m.ticket"
    ticket.write_bytes(b"LSLTTKT\x00" + b"\x00" * 60)
    with pytest.raises(SystemExit) as info:
        export_main([str(ticket), "--out", str(tmp_path / "copy.ticket")])
    assert str(info.value.code) == (f"lightning-slt export: {ticket} is already a ticket file, the format this command "
                                    "writes; copy it to change its name, or pass --format ctranslate2 to convert it. A "
                                    "ticket with other --values or without the tokenizer is exported from the run's "
                                    "checkpoint")
