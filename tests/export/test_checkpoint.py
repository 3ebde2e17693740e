"""Export of a real pruned TranslationModule checkpoint, and back: weights, translations."""

from pathlib import Path

import pytest
import torch

from lightning_slt.export.checkpoint import export_checkpoint, load_ticket, pruned_masks_from_zeros
from lightning_slt.export.sparse_linear import sparsify_
from lightning_slt.artifacts.ticket import TicketError, read_ticket, write_ticket
from lightning_slt.model.module import TOKENIZER_KEY, TranslationModule

from ._train import SENTENCES


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


@pytest.mark.parametrize("hparams, says", [
    ({"hidden": 64, "lr": 0.01}, r"its hyper-parameters \['hidden'\] are not TranslationModule arguments"),
    ([64], r"has hyper_parameters of type list, expected a dict of TranslationModule arguments"),
], ids=["foreign-argument", "not-a-dict"])
def test_export_refuses_another_lightning_modules_checkpoint(hparams, says, tmp_path) -> None:
    """Reliability round three: a user's LightningModule checkpoint was exported "as a ticket"
    with exit 0, and translate / the CTranslate2 export then failed with raw TypeErrors."""
    torch.save({"state_dict": {"layer.weight": torch.randn(8, 4)}, "hyper_parameters": hparams, "global_step": 0,
                "epoch": 0, "pytorch-lightning_version": "2.6.0"}, tmp_path / "best.ckpt")
    with pytest.raises(ValueError, match=rf"best.ckpt (was written by another LightningModule: )?{says}") as raised:
        export_checkpoint(tmp_path / "best.ckpt", tmp_path / "x.ticket")
    if not isinstance(hparams, list):
        assert "tickets hold lightning_slt's TranslationModule" in str(raised.value)
        assert "the run's best.ckpt is the model" in str(raised.value)
    assert not (tmp_path / "x.ticket").exists()


def test_export_says_what_a_path_that_is_no_checkpoint_file_is(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*run' is a folder, not a file; pass a checkpoint file"):
        export_checkpoint(tmp_path / "run", tmp_path / "x.ticket")  # before: "checkpoint not found"
    (tmp_path / "loop.ckpt").symlink_to(tmp_path / "loop.ckpt")
    with pytest.raises(FileNotFoundError, match=r"'.*loop.ckpt' is a symbolic link that leads nowhere"):
        export_checkpoint(tmp_path / "loop.ckpt", tmp_path / "x.ticket")
