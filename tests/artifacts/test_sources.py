"""Ticket files as pruning sources: recognised by their magic bytes, θT or θk ⊙ m read bit for
bit, damaged files refused with the ticket's own error, all without importing Lightning."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_slt.artifacts.ticket import TicketError, write_ticket
from lightning_slt.artifacts import load_source, match_names


def _state() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    masks = {"model.enc.weight": torch.rand(6, 5, generator=g) > 0.6}
    state = {"model.enc.weight": torch.randn(6, 5, generator=g), "model.enc.bias": torch.randn(6, generator=g)}
    state["model.enc.weight"] = torch.where(masks["model.enc.weight"], state["model.enc.weight"], torch.zeros(()))
    state["model.enc.weight"][tuple(masks["model.enc.weight"].nonzero()[0].tolist())] = 0.0  # a kept entry that is zero
    return state, masks


def _write(path: Path, extra: dict) -> Path:
    state, masks = _state()
    write_ticket(path, state, masks, {"class": "x"}, extra=extra)
    return path


def _bits_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n].view(torch.int32), b[n].view(torch.int32)) for n in a)


@pytest.mark.parametrize("extra", [{"kind": "ticket"}, {}], ids=["ticket", "other-writer"])
def test_a_ticket_offers_its_weights_and_masks(extra, tmp_path):
    source = load_source(_write(tmp_path / "m.ticket", extra))
    state, masks = _state()
    assert source.kind == "ticket" and source.path == str(tmp_path / "m.ticket")
    assert _bits_equal(source.weights, state)
    assert source.masks.keys() == masks.keys() and torch.equal(source.masks["model.enc.weight"], masks["model.enc.weight"])
    assert source.snapshots == {} and source.optimizer_states == {}
    assert match_names(["enc.weight", "enc.bias"], source.weights) == {"enc.weight": "model.enc.weight",
                                                                       "enc.bias": "model.enc.bias"}


def test_a_winning_ticket_offers_theta_k_as_the_snapshot_of_its_step(tmp_path):
    source = load_source(_write(tmp_path / "wt.ticket", {"kind": "winning_ticket", "rewind_step": 7}))
    state, masks = _state()
    assert source.kind == "winning_ticket" and source.weights is None
    assert list(source.snapshots) == [7] and _bits_equal(source.snapshots[7], state)
    assert torch.equal(source.masks["model.enc.weight"], masks["model.enc.weight"])  # the zero kept entry stays kept


def test_a_winning_ticket_without_its_step_is_refused(tmp_path):
    path = _write(tmp_path / "wt.ticket", {"kind": "winning_ticket"})
    with pytest.raises(TicketError, match=rf"{path}: winning ticket has no valid rewind_step in its header \(got "
                                          r"None\); re-export it with `lightning-slt export <checkpoint> --winning-ticket`"):
        load_source(path)


def test_damaged_tickets_fail_with_the_tickets_own_error(tmp_path):
    data = _write(tmp_path / "good.ticket", {"kind": "ticket"}).read_bytes()
    corrupt = bytearray(data)
    corrupt[-3] ^= 0x01  # inside the payload (no tokenizer section)
    cases = {
        "corrupt.ticket": (bytes(corrupt), "payload checksum mismatch: the ticket file is corrupted"),
        "cut.ticket": (data[:-10], rf"ticket is truncated: expected {len(data)} bytes, file has {len(data) - 10}"),
        "magic.ticket": (data[:5], "ticket is truncated: 5 bytes, shorter than its 52-byte prefix"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(TicketError, match=rf"{tmp_path / name}: {message}"):
            load_source(tmp_path / name)


@pytest.mark.slow
def test_reading_a_ticket_as_a_source_does_not_import_lightning(tmp_path):
    path = _write(tmp_path / "wt.ticket", {"kind": "winning_ticket", "rewind_step": 0})
    code = (
        "import sys; from lightning_slt.artifacts import load_source; "
        f"source = load_source({str(path)!r}); assert source.kind == 'winning_ticket'; "
        "sys.exit(any(m.startswith(('pytorch_lightning', 'lightning')) and not m.startswith('lightning_slt') "
        "for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_integer_tensors_are_a_mask_file_only_if_all_are_0_or_1(tmp_path):
    """Reliability round three: an int8-quantized state_dict was read as 0/1 masks (its quantized
    zeros pruned). Integer tensors of other values are fine beside float weights (position ids)."""
    g = torch.Generator().manual_seed(0)
    cases = {
        "openlth.pth": ({"fc.weight": torch.randint(0, 2, (4, 3), generator=g)}, "openlth_mask"),
        "bool.pth": ({"fc.weight": torch.rand(4, 3, generator=g) > 0.5}, "openlth_mask"),
        "with_ids.pt": ({"fc.weight": torch.randn(4, 3, generator=g), "pos_ids": torch.arange(8).view(1, 8)},
                        "state_dict"),
    }
    for name, (tensors, kind) in cases.items():
        torch.save(tensors, tmp_path / name)
        assert load_source(tmp_path / name).kind == kind, name
    quantized = {"fc.weight": torch.randint(-128, 128, (4, 3), generator=g, dtype=torch.int8),
                 "fc.scale": torch.tensor(0.02)}  # float scales, but no float weights
    torch.save(quantized, tmp_path / "int8.pt")
    with pytest.raises(ValueError, match=r"'.*int8.pt' holds integer tensors that are not 0/1 masks \('fc.weight': "
                                         r"torch.int8, values -?\d+ to \d+\) and no floating-point weights: a quantized "
                                         r"state_dict.*dequantize it to float weights.*or pass a file of 0/1 masks"):
        load_source(tmp_path / "int8.pt")


def test_save_pretrained_shards_are_names_beside_the_index_symlinks_included(tmp_path):
    """Shards named by a path ("../x") are refused; a shard that is a symlink (the Hugging Face
    cache links snapshots to blobs) is a plain name and is read."""
    import json

    from safetensors.torch import save_file

    (tmp_path / "blobs").mkdir()
    save_file({"w": torch.ones(2, 2)}, tmp_path / "blobs" / "abc123")
    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "model-00001-of-00001.safetensors").symlink_to(Path("..") / "blobs" / "abc123")
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    assert torch.equal(load_source(folder).weights["w"], torch.ones(2, 2))
    index.write_text(json.dumps({"weight_map": {"w": "../blobs/abc123"}}))
    with pytest.raises(ValueError, match=r"lists shard '../blobs/abc123' for 'w', which is not a file name in its "
                                         r"folder"):
        load_source(folder)


def test_a_fifo_or_a_device_is_refused_before_it_is_opened(tmp_path):
    import os

    os.mkfifo(tmp_path / "model.ckpt")
    with pytest.raises(FileNotFoundError, match=r"'.*model.ckpt' is not a regular file \(a FIFO\); pass a checkpoint "
                                                r"file or a Hugging Face save_pretrained folder"):
        load_source(tmp_path / "model.ckpt")  # before: waited forever in open()
    with pytest.raises(FileNotFoundError, match=r"'/dev/null' is not a regular file \(a character device\)"):
        load_source("/dev/null")
