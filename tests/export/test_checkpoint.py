"""Export of a real pruned TranslationModule checkpoint, and back: weights, translations, CLI."""

import json
from pathlib import Path

import pytest
import torch

from lightning_slt.callbacks import GradualMagnitudePruning
from lightning_slt.export.checkpoint import export_checkpoint, load_ticket, pruned_masks_from_zeros
from lightning_slt.export.cli import export_main
from lightning_slt.export.sparse_linear import sparsify_
from lightning_slt.artifacts.ticket import TicketError, read_ticket, write_ticket
from lightning_slt.export.translate import translate_main
from lightning_slt.model.module import TOKENIZER_KEY, TranslationModule

from ._train import train_and_save

TINY = dict(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, max_positions=128,
            dropout=0.1, lr=3e-3, warmup_steps=4, beam_size=2, max_len_a=1.0, max_len_b=5)
SENTENCES = ["Two young men are playing football in a park.", "A dog.", "A woman is reading a book.",
             "", "Several people stand in front of a large building while a man rides a bicycle."]


@pytest.fixture(scope="module")
def pruned_checkpoint(data_root, tmp_path_factory) -> Path:
    """A TranslationModule trained 8 steps on 256 Multi30k pairs while pruned to 80 %."""
    root = tmp_path_factory.mktemp("ckpt")
    return train_and_save(data_root, root, dict(vocab_size=300, train_subset=256, max_tokens=256), TINY, max_steps=8,
                          callbacks=(GradualMagnitudePruning(final_sparsity=0.8, end_step=4, frequency=2),))


def test_export_then_load_gives_identical_weights_and_translations(pruned_checkpoint, tmp_path) -> None:
    checkpoint = torch.load(pruned_checkpoint, map_location="cpu", weights_only=False)
    stored_masks = checkpoint["lightning_slt"]["masks"]
    sizes = export_checkpoint(pruned_checkpoint, tmp_path / "m.ticket")
    ticket = read_ticket(tmp_path / "m.ticket")
    assert ticket.extra["masks_from"] == "checkpoint" and ticket.extra["global_step"] == 8
    assert set(ticket.masks) == set(stored_masks)
    for name, mask in stored_masks.items():
        assert torch.equal(ticket.masks[name], mask.bool())
        assert float(1 - mask.float().mean()) == pytest.approx(0.8, abs=1e-3)
    assert ticket.tokenizer_proto == checkpoint[TOKENIZER_KEY].numpy().tobytes()
    assert sizes["payload"] < 0.35 * sum(t.numel() * 4 for t in checkpoint["state_dict"].values())

    module = load_ticket(tmp_path / "m.ticket")
    assert module.training is False
    original = TranslationModule.load_from_checkpoint(pruned_checkpoint, map_location="cpu").eval()
    for name, tensor in original.state_dict().items():
        rebuilt = module.state_dict()[name]
        assert rebuilt.dtype == tensor.dtype
        assert torch.equal(rebuilt.view(torch.int32), tensor.view(torch.int32)), name  # bit for bit
    assert module.hparams == original.hparams
    assert module.translate(SENTENCES, beam_size=1) == original.translate(SENTENCES, beam_size=1)
    assert module.translate(SENTENCES) == original.translate(SENTENCES)

    sparsify_(module.model, "on")
    assert module.translate(SENTENCES, beam_size=1) == original.translate(SENTENCES, beam_size=1)


def test_fp16_export_rounds_weights_and_masks_fall_back_to_zeros(pruned_checkpoint, tmp_path) -> None:
    checkpoint = torch.load(pruned_checkpoint, map_location="cpu", weights_only=False)
    del checkpoint["lightning_slt"]  # a checkpoint of a run without our callbacks
    plain = tmp_path / "plain.ckpt"
    torch.save(checkpoint, plain)
    fp32 = export_checkpoint(plain, tmp_path / "a.ticket")
    fp16 = export_checkpoint(plain, tmp_path / "b.ticket", values_dtype="float16")
    assert fp16["values"] * 2 == fp32["values"]
    ticket = read_ticket(tmp_path / "b.ticket")
    assert ticket.extra["masks_from"] == "zeros"
    assert set(ticket.masks) == set(pruned_masks_from_zeros(checkpoint["state_dict"]))
    for name, tensor in checkpoint["state_dict"].items():
        assert torch.equal(ticket.state_dict[name], tensor.half().float())


def test_a_lightning_cli_checkpoint_exports_and_loads(pruned_checkpoint, tmp_path) -> None:
    """LightningCLI adds its own keys to the saved hyper-parameters; they are not module arguments."""
    checkpoint = torch.load(pruned_checkpoint, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"].update(_instantiator="lightning.pytorch.cli.instantiate_module",
                                          _class_path="lightning_slt.TranslationModule")
    torch.save(checkpoint, tmp_path / "cli.ckpt")
    export_checkpoint(tmp_path / "cli.ckpt", tmp_path / "cli.ticket")
    assert not any(key.startswith("_") for key in read_ticket(tmp_path / "cli.ticket").model_config["hparams"])
    module = load_ticket(tmp_path / "cli.ticket")
    assert module.translate(SENTENCES, beam_size=1) == load_ticket(_ticket_of(pruned_checkpoint, tmp_path)).translate(
        SENTENCES, beam_size=1)


def _ticket_of(checkpoint: Path, folder: Path) -> Path:
    export_checkpoint(checkpoint, folder / "plain.ticket")
    return folder / "plain.ticket"


def test_load_ticket_refuses_a_ticket_of_something_else(tmp_path) -> None:
    write_ticket(tmp_path / "x.ticket", {"w": torch.zeros(2, 2)}, {}, {"class": "my.Model"})
    with pytest.raises(TicketError, match=r"x.ticket: ticket holds model_config for 'my.Model', not "
                                          r"lightning_slt.model.module.TranslationModule"):
        load_ticket(tmp_path / "x.ticket")


def test_export_refuses_files_that_are_not_module_checkpoints(tmp_path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="is not a Lightning checkpoint of TranslationModule"):
        export_checkpoint(tmp_path / "sd.pt", tmp_path / "x.ticket")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        export_checkpoint(tmp_path / "absent.ckpt", tmp_path / "x.ticket")


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
