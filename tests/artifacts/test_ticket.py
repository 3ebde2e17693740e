"""Ticket file: bit-identical round trips, compact sizes, and clear refusals of bad files."""

import hashlib
import struct
from pathlib import Path

import pytest
import torch

from lightning_slt.artifacts.ticket import FORMAT_VERSION, MAGIC, TicketError, read_ticket, write_ticket

TOKENIZER = b"sentencepiece model bytes " * 40


def _pruned_state(sparsity: float = 0.9, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    embed = torch.randn(300, 32, generator=generator)
    state = {
        "model.embed.weight": embed,
        "model.proj.weight": torch.randn(64, 32, generator=generator),
        "model.proj.bias": torch.randn(64, generator=generator),
        "model.norm.weight": torch.ones(32),
        "model.steps": torch.tensor(7),
        "model.flags": torch.tensor([True, False]),
        "model.empty": torch.zeros(0, 4),
    }
    masks = {}
    for name in ("model.embed.weight", "model.proj.weight"):
        masks[name] = torch.rand(state[name].shape, generator=generator) >= sparsity
        state[name] = state[name] * masks[name] + 0.0
    return state, masks


def _assert_bit_identical(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.is_floating_point():
        assert torch.equal(a.view(torch.int32 if a.dtype == torch.float32 else torch.int16),
                           b.view(torch.int32 if b.dtype == torch.float32 else torch.int16))
    else:
        assert torch.equal(a, b)


def test_fp32_round_trip_is_bit_identical(tmp_path: Path) -> None:
    state, masks = _pruned_state()
    config = {"class": "X", "hparams": {"d_model": 32, "betas": [0.9, 0.98]}}
    sizes = write_ticket(tmp_path / "m.ticket", state, masks, config, TOKENIZER, "float32", {"note": "hi"})
    ticket = read_ticket(tmp_path / "m.ticket")
    assert list(ticket.state_dict) == list(state)
    for name, tensor in state.items():
        _assert_bit_identical(ticket.state_dict[name], tensor)
    assert set(ticket.masks) == set(masks)
    for name, mask in masks.items():
        assert torch.equal(ticket.masks[name], mask)
    assert ticket.model_config == config and ticket.extra == {"note": "hi"}
    assert ticket.tokenizer_proto == TOKENIZER
    assert ticket.tokenizer_sha256 == hashlib.sha256(TOKENIZER).hexdigest()
    assert ticket.values_dtype == "float32"
    assert ticket.sizes == sizes
    assert sizes["file"] == (tmp_path / "m.ticket").stat().st_size
    assert sizes["tokenizer"] == len(TOKENIZER)
    kept = sum(int(m.sum()) for m in masks.values())
    assert sizes["values"] == 4 * kept


@pytest.mark.parametrize("values_dtype,dtype", [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_half_precision_values_round_to_that_dtype(tmp_path: Path, values_dtype: str, dtype: torch.dtype) -> None:
    state, masks = _pruned_state()
    sizes = write_ticket(tmp_path / "m.ticket", state, masks, {}, None, values_dtype)
    ticket = read_ticket(tmp_path / "m.ticket")
    for name, tensor in state.items():
        rebuilt = ticket.state_dict[name]
        assert rebuilt.dtype == tensor.dtype  # restored to the original dtype
        if tensor.is_floating_point():
            assert torch.equal(rebuilt, tensor.to(dtype).to(tensor.dtype))  # exactly the rounded values
        else:
            assert torch.equal(rebuilt, tensor)
    assert sizes["values"] == 2 * sum(int(m.sum()) for m in masks.values())
    assert ticket.tokenizer_proto is None and ticket.tokenizer_sha256 is None


def test_tied_tensors_are_stored_once_and_shared_again(tmp_path: Path) -> None:
    weight = torch.randn(50, 8)
    mask = weight.abs() > 0.5
    weight.mul_(mask).add_(0.0)
    state = {"embed.weight": weight, "out.weight": weight}
    sizes = write_ticket(tmp_path / "m.ticket", state, {"embed.weight": mask, "out.weight": mask}, {})
    ticket = read_ticket(tmp_path / "m.ticket")
    assert ticket.state_dict["embed.weight"] is ticket.state_dict["out.weight"]
    assert torch.equal(ticket.state_dict["out.weight"], weight)
    assert set(ticket.masks) == {"embed.weight", "out.weight"}
    assert sizes["values"] == 4 * int(mask.sum())  # one copy of the values


def test_tokenizer_can_be_left_out_but_its_hash_is_kept(tmp_path: Path) -> None:
    state, masks = _pruned_state()
    with_tok = write_ticket(tmp_path / "a.ticket", state, masks, {}, TOKENIZER)
    without = write_ticket(tmp_path / "b.ticket", state, masks, {}, TOKENIZER, embed_tokenizer=False)
    assert with_tok["file"] - without["file"] == len(TOKENIZER) - 1  # the bytes, less "false" vs "true"
    ticket = read_ticket(tmp_path / "b.ticket")
    assert ticket.tokenizer_proto is None
    assert ticket.tokenizer_sha256 == hashlib.sha256(TOKENIZER).hexdigest()


def test_payload_is_compact_at_high_sparsity(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(512, 2048, generator=generator)
    mask = torch.rand(weight.shape, generator=generator) >= 0.98
    sizes = write_ticket(tmp_path / "m.ticket", {"w": weight * mask}, {"w": mask}, {})
    dense_bytes = weight.numel() * 4
    assert sizes["payload"] / dense_bytes < 0.026  # entropy floor at 98 %: 0.0244
    assert sizes["masks"] * 8 / weight.numel() < 0.145  # bits per entry; floor 0.1414


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    state, masks = _pruned_state()
    path = tmp_path / "m.ticket"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        write_ticket(path, state, masks, {"bad": object()})
    assert path.read_bytes() == b"old"
    write_ticket(path, state, masks, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ticket"]


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    state, masks = _pruned_state()
    path = tmp_path / "m.ticket"
    with pytest.raises(ValueError, match=r"values_dtype must be one of \['bfloat16', 'float16', 'float32'\], got 'int8'"):
        write_ticket(path, state, masks, {}, values_dtype="int8")
    with pytest.raises(ValueError, match=r"masks\['nope'\] has no tensor of that name in state_dict"):
        write_ticket(path, state, {"nope": torch.ones(2, dtype=torch.bool)}, {})
    with pytest.raises(ValueError, match=r"masks\['model.proj.weight'\] has shape \(32, 64\), tensor has \(64, 32\)"):
        write_ticket(path, state, {"model.proj.weight": torch.ones(32, 64, dtype=torch.bool)}, {})
    with pytest.raises(ValueError, match=r"masks\['model.proj.weight'\] must be a bool tensor, got torch.float32"):
        write_ticket(path, state, {"model.proj.weight": torch.ones(64, 32)}, {})
    dense = dict(state, **{"model.proj.weight": torch.ones(64, 32)})
    with pytest.raises(ValueError, match=r"state_dict\['model.proj.weight'\] has \d+ non-zero entries where masks"):
        write_ticket(path, dense, masks, {})
    with pytest.raises(ValueError, match="model_config must be JSON-serializable"):
        write_ticket(path, state, masks, {"x": {1, 2}})
    assert not path.exists()


@pytest.fixture()
def ticket_bytes(tmp_path: Path) -> tuple[Path, bytes]:
    state, masks = _pruned_state()
    path = tmp_path / "m.ticket"
    write_ticket(path, state, masks, {"a": 1}, TOKENIZER)
    return path, path.read_bytes()


def _header_end(data: bytes) -> int:
    return 52 + struct.unpack_from("<Q", data, 12)[0]


def test_corrupted_payload_byte_fails_the_checksum(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    corrupt = bytearray(data)
    corrupt[_header_end(data) + 100] ^= 0x01
    path.write_bytes(bytes(corrupt))
    with pytest.raises(TicketError, match=f"{path}: payload checksum mismatch: the ticket file is corrupted"):
        read_ticket(path)


def test_corrupted_header_byte_fails_the_header_checksum(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    corrupt = bytearray(data)
    corrupt[60] ^= 0x20
    path.write_bytes(bytes(corrupt))
    with pytest.raises(TicketError, match=f"{path}: header checksum mismatch: the ticket file is corrupted"):
        read_ticket(path)


def test_corrupted_tokenizer_byte_fails_its_checksum(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    corrupt = bytearray(data)
    corrupt[-1] ^= 0x01
    path.write_bytes(bytes(corrupt))
    with pytest.raises(TicketError, match=f"{path}: tokenizer checksum mismatch"):
        read_ticket(path)


@pytest.mark.parametrize("keep", [0, 5, 30, 200, -1])
def test_truncated_file_is_refused(ticket_bytes: tuple[Path, bytes], keep: int) -> None:
    path, data = ticket_bytes
    path.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(TicketError, match=f"{path}: ticket is truncated"):
        read_ticket(path)


def test_trailing_bytes_are_refused(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    path.write_bytes(data + b"xx")
    with pytest.raises(TicketError, match=f"{path}: ticket has 2 bytes of trailing data"):
        read_ticket(path)


def test_wrong_magic_is_refused(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    path.write_bytes(b"PK\x03\x04" + data[4:])  # e.g. a torch.save zip
    with pytest.raises(TicketError, match=rf"{path}: not a lightning_slt ticket \(magic bytes b'PK\\x03\\x04"):
        read_ticket(path)


def test_wrong_version_is_refused(ticket_bytes: tuple[Path, bytes]) -> None:
    path, data = ticket_bytes
    path.write_bytes(MAGIC + struct.pack("<I", FORMAT_VERSION + 1) + data[12:])
    with pytest.raises(TicketError, match=f"{path}: ticket format version {FORMAT_VERSION + 1} is not supported "
                                          f"\\(this reader supports version {FORMAT_VERSION}\\)"):
        read_ticket(path)


def test_missing_file_is_a_ticket_error(tmp_path: Path) -> None:
    with pytest.raises(TicketError, match="cannot read ticket"):
        read_ticket(tmp_path / "absent.ticket")
    assert issubclass(TicketError, ValueError)


def test_entries_per_byte_bound_reads_a_99_99_percent_sparse_ticket_and_refuses_beyond(tmp_path: Path) -> None:
    """Reliability round three: the one bound on what a header may declare (MAX_ENTRIES_PER_BYTE)
    lets a 99.99 %-sparse float32 tensor through, and the writer refuses what the reader would."""
    from lightning_slt.artifacts.ticket import MAX_ENTRIES_PER_BYTE

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2048, 2048, generator=generator)
    mask = torch.rand(weight.shape, generator=generator) >= 0.9999
    sizes = write_ticket(tmp_path / "sparse.ticket", {"w": weight * mask}, {"w": mask}, {})
    assert 1000 < weight.numel() / sizes["file"] < MAX_ENTRIES_PER_BYTE
    assert torch.equal(read_ticket(tmp_path / "sparse.ticket").masks["w"], mask)
    nothing_kept = torch.zeros(2048, 2048, dtype=torch.bool)
    with pytest.raises(ValueError, match=rf"this ticket could not be read back: it would hold 4194304 entries in its "
                                         rf"\d+ bytes of header and payload; at most {MAX_ENTRIES_PER_BYTE} entries per "
                                         r"byte.*tensor 'w' has 4194304 entries and 0 kept"):
        write_ticket(tmp_path / "empty.ticket", {"w": torch.zeros(2048, 2048)}, {"w": nothing_kept}, {})
    assert not (tmp_path / "empty.ticket").exists()
    small = torch.zeros(64, 64, dtype=torch.bool)  # a small all-pruned tensor is fine: the header pays for it
    write_ticket(tmp_path / "small.ticket", {"w": torch.zeros(64, 64)}, {"w": small}, {})
    assert torch.equal(read_ticket(tmp_path / "small.ticket").masks["w"], small)


def test_a_header_that_contradicts_the_payload_names_the_tensor(ticket_bytes: tuple[Path, bytes]) -> None:
    """Shapes, counts and sections are checked against the payload before anything is decoded."""
    import json

    path, data = ticket_bytes
    header = json.loads(data[52:_header_end(data)])
    record = next(r for r in header["tensors"] if r["name"] == "model.proj.bias")
    record["shape"] = [2**40]
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    path.write_bytes(data[:12] + struct.pack("<Q", len(header_bytes)) + hashlib.sha256(header_bytes).digest()
                     + header_bytes + data[_header_end(data):])
    with pytest.raises(TicketError, match=rf"{path}: tensor 'model.proj.bias' declares 1099511627776 entries \(shape "
                                          r"\[1099511627776\]\), but its values section holds 256 bytes \(64 float32 "
                                          r"values\); the header does not match .* re-export it"):
        read_ticket(path)


def test_a_folder_or_a_fifo_is_not_read_as_a_ticket(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TicketError, match=r"fifo: cannot read ticket: it is not a regular file \(a FIFO\)"):
        read_ticket(tmp_path / "fifo")  # before: open() waited for a writer
    with pytest.raises(TicketError, match=rf"{tmp_path}: cannot read ticket: it is a folder, not a file"):
        read_ticket(tmp_path)


def test_read_ticket_header_reads_no_payload_and_checks_what_it_reads(ticket_bytes: tuple[Path, bytes]) -> None:
    """For commands that need a ticket's kind before loading it (one owner of the layout)."""
    import os

    from lightning_slt.artifacts.ticket import read_ticket_header

    path, data = ticket_bytes
    assert read_ticket_header(path)["model_config"] == {"a": 1}
    path.write_bytes(data[:12] + struct.pack("<Q", 2**62) + data[20:])  # a header length beyond the file
    with pytest.raises(TicketError, match=rf"{path}: ticket is truncated inside its header \(\d+ of {2**62} bytes\)"):
        read_ticket_header(path)
    path.write_bytes(data[:60] + bytes([data[60] ^ 0x20]) + data[61:])
    with pytest.raises(TicketError, match=f"{path}: header checksum mismatch"):
        read_ticket_header(path)
    os.mkfifo(path.parent / "fifo")
    with pytest.raises(TicketError, match=r"fifo: cannot read ticket: it is not a regular file \(a FIFO\)"):
        read_ticket_header(path.parent / "fifo")
