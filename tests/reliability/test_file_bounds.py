"""Sizes, kinds and values read from a file are checked against the file before anything is built.

Reliability, round three. A 292 KB ticket whose header declared a 2^30-entry tensor (checksum
recomputed) reached 1.5 GB before it was refused; an int8-quantized state_dict was taken for a
0/1 mask file; a checkpoint of someone else's LightningModule was exported "as a ticket". Then
the same files a hostile user would try: FIFOs, devices, empty files, symlink loops, sharded
indexes pointing outside their folder, safetensors headers larger than their file, tickets whose
header contradicts its data in every field it has.

Every crafted ticket recomputes both checksums (``_assemble``/``_edit``), so only the size and
consistency checks can catch it. Each case asserts what the error says: what is wrong, where
(the file, the tensor or shard) and how to fix it; and that no file was written or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_slt.artifacts import load_source
from lightning_slt.artifacts.ticket import _PREFIX, FORMAT_VERSION, MAGIC, TicketError, read_ticket, write_ticket

from .tiny import REPO_ROOT, file_states

LIGHTNING_SLT = str(Path(sys.executable).parent / "lightning-slt")
REEXPORT = "re-export it from its checkpoint"  # the fix every damaged or edited ticket is told


# -- crafting tickets -----------------------------------------------------------------------


def _valid_ticket(path: Path) -> Path:
    """~80 KB: one tensor of each storage: dense, a mask coded by its kept entries (80 % pruned),
    one coded by its pruned entries (20 % pruned), and a bitmap (50 %)."""
    g = torch.Generator().manual_seed(0)
    state = {name: torch.randn(300, 64, generator=g) for name in ("few", "most", "half")}
    state["bias"] = torch.randn(64, generator=g)
    masks = {"few": torch.rand(300, 64, generator=g) >= 0.8, "most": torch.rand(300, 64, generator=g) >= 0.2,
             "half": torch.rand(300, 64, generator=g) >= 0.5}
    for name, mask in masks.items():
        state[name] = state[name] * mask + 0.0
    write_ticket(path, state, masks, {"class": "x"})
    return path


def _parts(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    header_len = _PREFIX.unpack_from(data)[2]
    return json.loads(data[_PREFIX.size : _PREFIX.size + header_len]), data[_PREFIX.size + header_len :]


def _assemble(path: Path, header: dict, rest: bytes) -> Path:
    """A ticket from `header` and the bytes after it, both checksums recomputed."""
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    path.write_bytes(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes), hashlib.sha256(header_bytes).digest())
                     + header_bytes + rest)
    return path


def _edit(src: Path, dst: Path, edit) -> Path:
    """`src` with its header changed by ``edit(header)`` (the header checksum recomputed)."""
    header, rest = _parts(src)
    edit(header)
    return _assemble(dst, header, rest)


def _record(header: dict, name: str) -> dict:
    return next(r for r in header["tensors"] if r["name"] == name)


def _set_shape(name: str, entries: int, kept_too: bool = False):
    def edit(header: dict) -> None:
        record = _record(header, name)
        if kept_too and record["mask"]["coded_value"] is False:  # kept = entries - pruned, as the code implies
            record["kept"] = entries - record["mask"]["count"]
        record["shape"] = [entries]
    return edit


def _rice_ticket(path: Path, entries: int, unary: list[int], k: int, gaps: list[int]) -> Path:
    """A ticket of one [entries] tensor whose mask is the Rice code of `gaps` between kept
    entries: the `unary` bits given, then each gap's low `k` bits; one float32 value per gap."""
    remainder_bits = [int(b) for gap in gaps for b in format(gap % (1 << k), f"0{k}b")] if k else []
    unary_bytes, remainders = np.packbits(unary).tobytes(), np.packbits(remainder_bits).tobytes()
    mask = unary_bytes + remainders
    values_offset = (len(mask) + 15) // 16 * 16
    values = np.arange(1, len(gaps) + 1, dtype=np.float32).tobytes()
    payload = mask + b"\0" * (values_offset - len(mask)) + values
    record = {"name": "w", "shape": [entries], "dtype": "float32", "stored_dtype": "float32", "storage": "masked",
              "kept": len(gaps), "values": {"offset": values_offset, "nbytes": len(values)},
              "mask": {"codec": "rice-gaps", "coded_value": True, "count": len(gaps), "rice_k": k,
                       "unary_bits": len(unary), "unary_nbytes": len(unary_bytes), "remainder_nbytes": len(remainders),
                       "offset": 0, "nbytes": len(mask)}}
    header = {"format": "lightning_slt.ticket", "version": FORMAT_VERSION, "values_dtype": "float32",
              "model_config": {}, "extra": {}, "tokenizer": None, "tensors": [record],
              "payload": {"nbytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}
    return _assemble(path, header, payload)


def _rice_bomb(path: Path, entries: int) -> Path:
    """Self-consistent: an [entries] tensor keeping its first and last entry, in a 3-bit unary
    stream (gap 0, then quotient 1) whose k spans the whole tensor: a few hundred bytes."""
    gap = entries - 2  # the pruned entries between the two kept ones
    return _rice_ticket(path, entries, [1, 0, 1], gap.bit_length() - 1, [0, gap])


# -- 1. memory from a small file --------------------------------------------------------------

# Each case: (file name, how it is made from the valid ticket, what the refusal names).
HUGE = {
    "dense_shape": (lambda v, d, n: _edit(v, d, _set_shape("bias", n)), "'bias'"),
    "kept_coded_shape": (lambda v, d, n: _edit(v, d, _set_shape("few", n)), "'few'"),
    "pruned_coded_shape": (lambda v, d, n: _edit(v, d, _set_shape("most", n)), "'most'"),
    "pruned_coded_shape_and_kept": (lambda v, d, n: _edit(v, d, _set_shape("most", n, kept_too=True)), "'most'"),
    "bitmap_shape": (lambda v, d, n: _edit(v, d, _set_shape("half", n)), "'half'"),
    "rice_code_spanning_it": (lambda v, d, n: _rice_bomb(d, n), "'w'"),
}

# Peak resident memory of one call, measured in a process of its own: /proc/self/clear_refs
# ("5") resets the kernel's high-water mark VmHWM, so VmHWM - VmRSS after the call is the most
# memory the call held at any moment: numpy's and torch's allocations alike, counted when
# touched (what the OOM killer counts), however briefly. A warm-up read pays one-off costs.
_MEASURE = textwrap.dedent("""
    import json, sys
    from lightning_slt.artifacts.ticket import TicketError, read_ticket

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])  # kB

    def peak_kb(path):
        open("/proc/self/clear_refs", "w").write("5")
        before = status("VmRSS:")
        try:
            read_ticket(path)
            outcome = "read"
        except TicketError as error:
            outcome = str(error)
        except BaseException as error:  # a MemoryError or a raw exception: not a refusal
            outcome = f"{type(error).__name__}: {error}"
        return status("VmHWM:") - before, outcome

    def control_kb(nbytes):  # the instrument sees a known allocation
        open("/proc/self/clear_refs", "w").write("5")
        before = status("VmRSS:")
        held = bytearray(nbytes)
        held[::4096] = b"x" * len(range(0, nbytes, 4096))  # touch every page
        del held
        return status("VmHWM:") - before

    valid, *bad = sys.argv[1:]
    peak_kb(valid)  # warm-up
    print(json.dumps({"control_32mb": control_kb(32 << 20), **{path: peak_kb(path) for path in [valid, *bad]}}))
""")


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs")
def test_huge_declared_tensors_are_refused_within_a_few_mb(tmp_path, tally):
    """Reliability round three, 1: a ticket declaring 2^30 or 2^40 entries, in every field that
    can declare them, is refused naming the file and the tensor, its peak memory within 4 MB of
    reading the valid ticket it was made from (before: 1 GB, an accepted 4 GB tensor, a raw
    MemoryError)."""
    valid = _valid_ticket(tmp_path / "valid.ticket")
    cases = {}
    for entries in (2**30, 2**40):
        for case, (make, names) in HUGE.items():
            path = make(valid, tmp_path / f"{case}_{entries.bit_length() - 1}.ticket", entries)
            cases[str(path)] = names
    before = file_states(tmp_path)
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(valid), *cases], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout)
    assert 30 << 10 <= peaks.pop("control_32mb") <= 34 << 10  # the instrument sees 32 MB touched
    valid_kb, outcome = peaks.pop(str(valid))
    assert outcome == "read"
    print(f"\npeak memory: reading the valid {valid.stat().st_size:,}-byte ticket {valid_kb} kB")
    for path, (peak_kb, message) in peaks.items():
        print(f"peak memory: refusing {Path(path).name}: {peak_kb} kB: {message[:160]}")
    for path, (peak_kb, message) in peaks.items():
        assert message.startswith(f"{path}: tensor {cases[path]}"), (path, message)
        assert REEXPORT in message, message
        assert peak_kb <= valid_kb + 4096, (path, peak_kb, valid_kb)
    assert file_states(tmp_path) == before
    tally("bad_inputs", len(peaks))


def test_a_self_consistent_rice_bomb_is_refused_by_the_one_bound(tmp_path, tally):
    """A 2^30-entry tensor coded in 3 bits is valid in every field; it is refused by the bound
    on entries per byte of the file (said with the numbers), and the writer refuses to write a
    ticket that the reader would refuse."""
    path = _rice_bomb(tmp_path / "bomb.ticket", 2**30)
    with pytest.raises(TicketError, match=r"bomb.ticket: tensor 'w' declares 1073741824 entries .* at most "
                                          r"2048 entries per byte"):
        read_ticket(path)
    mask = torch.zeros(4096, 1024, dtype=torch.bool)  # 4M entries, nothing kept: a few hundred bytes
    with pytest.raises(ValueError, match=r"could not be read back.*2048 entries per byte"):
        write_ticket(tmp_path / "w.ticket", {"w": torch.zeros(4096, 1024)}, {"w": mask}, {})
    assert not (tmp_path / "w.ticket").exists()
    tally("bad_inputs", 2)


@pytest.mark.slow
def test_translate_refuses_a_huge_declared_ticket_naming_it(tmp_path, tally):
    """Every command that reads a ticket goes through read_ticket: `translate --ticket` says it
    (exit 1, no traceback, no output file)."""
    bad = _edit(_valid_ticket(tmp_path / "valid.ticket"), tmp_path / "model.ticket", _set_shape("few", 2**30))
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    before = file_states(tmp_path)
    done = subprocess.run([LIGHTNING_SLT, "translate", "--ticket", str(bad), "--input", str(tmp_path / "in.txt"),
                           "--output", str(tmp_path / "out.txt")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"{bad}: tensor 'few' declares 1073741824 entries" in done.stderr and REEXPORT in done.stderr
    assert "Traceback" not in done.stderr
    assert file_states(tmp_path) == before
    tally("bad_inputs")


# -- 2. integer tensors that are not 0/1 masks --------------------------------------------------


def _quantized_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    weights = {"fc1.weight": torch.randn(16, 8, generator=g), "fc2.weight": torch.randn(4, 16, generator=g)}
    return {name: (w / w.abs().max() * 127).round().to(torch.int8) for name, w in weights.items()}


def test_an_int8_quantized_state_dict_is_not_a_mask_file(tmp_path, tally):
    """Reliability round three, 2: before, its int8 tensors were taken for 0/1 masks and its
    quantized zeros pruned; now it is refused naming the file, a tensor, its values and the fix."""
    torch.save(_quantized_state_dict(), tmp_path / "int8.pt")
    with pytest.raises(ValueError, match=r"pruning source '.*int8.pt' holds integer tensors that are not 0/1 masks "
                                         r"\('fc1.weight': torch.int8, values -\d+ to \d+\).*dequantize"):
        load_source(tmp_path / "int8.pt")
    masks = {"fc1.weight": torch.randint(0, 2, (16, 8)), "fc2.weight": torch.randint(0, 2, (4, 16), dtype=torch.uint8)}
    torch.save(masks, tmp_path / "mask.pth")  # OpenLTH's mask file still reads as masks
    read = load_source(tmp_path / "mask.pth")
    assert read.kind == "openlth_mask" and torch.equal(read.masks["fc1.weight"], masks["fc1.weight"].bool())
    tally("bad_inputs")


def test_an_int8_quantized_save_pretrained_folder_is_not_a_mask_file(tmp_path, tally):
    from safetensors.torch import save_file

    (tmp_path / "hf").mkdir()
    save_file(_quantized_state_dict(), tmp_path / "hf" / "model.safetensors")
    with pytest.raises(ValueError, match=r"holds integer tensors that are not 0/1 masks.*dequantize"):
        load_source(tmp_path / "hf")
    tally("bad_inputs")


# -- 3. a checkpoint of another LightningModule -------------------------------------------------


def _foreign_checkpoint(path: Path, hyper_parameters) -> Path:
    """What Lightning writes for a user's module (save_hyperparameters of its own arguments)."""
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.6.0",
                "state_dict": {"layer.weight": torch.randn(8, 4), "layer.bias": torch.zeros(8)},
                "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [], "hparams_name": "kwargs",
                "hyper_parameters": hyper_parameters}, path)
    return path


FOREIGN = "was written by another LightningModule"


@pytest.mark.parametrize("hyper_parameters", [{"hidden": 64, "lr": 0.01}, {"n_classes": 10, "_class_path": "my.Net"}],
                         ids=["other-arguments", "lightning-cli"])
def test_exporting_another_modules_checkpoint_is_refused(hyper_parameters, tmp_path, tally):
    """Reliability round three, 3: before, written "as a ticket" with exit 0."""
    from lightning_slt.export.checkpoint import export_checkpoint

    ckpt = _foreign_checkpoint(tmp_path / "best.ckpt", hyper_parameters)
    with pytest.raises(ValueError, match=rf"best.ckpt {FOREIGN}.*tickets hold lightning_slt's TranslationModule.*"
                                         r"the run's best.ckpt is the model"):
        export_checkpoint(ckpt, tmp_path / "x.ticket")
    assert not (tmp_path / "x.ticket").exists()
    tally("bad_inputs")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "translate"])
def test_commands_refuse_another_modules_checkpoint(command, tmp_path, tally):
    """`lightning-slt export` exited 0; `translate` failed with a raw TypeError."""
    ckpt = _foreign_checkpoint(tmp_path / "best.ckpt", {"hidden": 64, "lr": 0.01})
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    args = {"export": ["export", str(ckpt), "--out", str(tmp_path / "x.ticket")],
            "translate": ["translate", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in.txt"),
                          "--output", str(tmp_path / "out.txt")]}[command]
    before = file_states(tmp_path)
    done = subprocess.run([LIGHTNING_SLT, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    assert FOREIGN in done.stderr and "best.ckpt is the model" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert file_states(tmp_path) == before
    tally("bad_inputs")


# -- hostile files, beyond the issue ------------------------------------------------------------


def _in_subprocess(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`code` in a process of its own, its address space capped at 3 GB (a reader that would
    read forever fails there instead of taking the machine)."""
    cap = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
    return subprocess.run([sys.executable, "-c", cap + code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("reader", ["read_ticket", "load_source"])
def test_a_fifo_is_refused_at_once_not_waited_on(reader, tmp_path, tally):
    """Before: `open()` of a FIFO waited forever for a writer."""
    fifo = tmp_path / "model.ticket"
    os.mkfifo(fifo)
    module = {"read_ticket": "lightning_slt.artifacts.ticket", "load_source": "lightning_slt.artifacts"}[reader]
    try:
        done = _in_subprocess(f"from {module} import {reader}\n{reader}({str(fifo)!r})", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader} waited on a FIFO")
    assert f"{fifo}" in done.stderr and "is not a regular file (a FIFO)" in done.stderr, done.stderr[-1500:]
    tally("bad_inputs")


def test_a_device_as_a_ticket_is_refused_not_read_forever(tally):
    """Before: `read_ticket('/dev/zero')` read until memory ran out."""
    done = _in_subprocess("from lightning_slt.artifacts.ticket import read_ticket\nread_ticket('/dev/zero')")
    assert "/dev/zero: cannot read ticket: it is not a regular file (a character device)" in done.stderr, \
        done.stderr[-1500:]
    assert "MemoryError" not in done.stderr
    tally("bad_inputs")


def test_a_device_as_a_pruning_source_is_refused(tally):
    with pytest.raises(FileNotFoundError, match="'/dev/null' is not a regular file"):
        load_source("/dev/null")
    tally("bad_inputs")


def test_a_symlink_loop_is_said_as_such(tmp_path, tally):
    """Before: load_source said the loop "does not exist"; export "checkpoint not found"."""
    from lightning_slt.export.checkpoint import export_checkpoint

    (tmp_path / "a.ckpt").symlink_to(tmp_path / "b.ckpt")
    (tmp_path / "b.ckpt").symlink_to(tmp_path / "a.ckpt")
    with pytest.raises(FileNotFoundError, match=r"'.*a.ckpt' is a symbolic link that leads nowhere"):
        load_source(tmp_path / "a.ckpt")
    with pytest.raises(FileNotFoundError, match=r"'.*a.ckpt' is a symbolic link that leads nowhere"):
        export_checkpoint(tmp_path / "a.ckpt", tmp_path / "x.ticket")
    with pytest.raises(TicketError, match=r"a.ckpt: cannot read ticket: it is a symbolic link that leads nowhere"):
        read_ticket(tmp_path / "a.ckpt")  # before: "Too many levels of symbolic links"
    tally("bad_inputs", 3)


def test_an_empty_file_is_said_to_be_empty(tmp_path, tally):
    """Before: "truncated or corrupt, or not a torch checkpoint (EOFError: )"."""
    from lightning_slt.export.checkpoint import export_checkpoint

    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"pruning source '.*last.ckpt' is empty \(0 bytes\)"):
        load_source(tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match=r"checkpoint '.*last.ckpt' is empty \(0 bytes\)"):
        export_checkpoint(tmp_path / "last.ckpt", tmp_path / "x.ticket")
    tally("bad_inputs", 2)


def test_a_plain_folder_given_to_export_is_said_to_be_a_folder(tmp_path, tally):
    """Before: "checkpoint not found" for a folder that is there."""
    from lightning_slt.export.checkpoint import export_checkpoint

    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*run' is a folder, not a file; pass a checkpoint file, "
                                                r"e.g. runs/<run>/checkpoints/last.ckpt"):
        export_checkpoint(tmp_path / "run", tmp_path / "x.ticket")
    tally("bad_inputs")


def test_hyper_parameters_that_are_not_a_dict_are_refused(tmp_path, tally):
    """Before: AttributeError: 'list' object has no attribute 'items'."""
    from lightning_slt.export.checkpoint import export_checkpoint

    ckpt = _foreign_checkpoint(tmp_path / "x.ckpt", [1, 2])
    with pytest.raises(ValueError, match=r"x.ckpt has hyper_parameters of type list, expected a dict"):
        export_checkpoint(ckpt, tmp_path / "x.ticket")
    tally("bad_inputs")


def _hf_folder(root: Path, weight_map) -> Path:
    from safetensors.torch import save_file

    folder = root / "hf"
    folder.mkdir()
    save_file({"w": torch.randn(4, 4)}, folder / "model-00001-of-00001.safetensors")
    index = weight_map if isinstance(weight_map, str) else json.dumps({"metadata": {}, "weight_map": weight_map})
    (folder / "model.safetensors.index.json").write_text(index)
    return folder


@pytest.mark.parametrize("shard", ["../secret.safetensors", "/ABS/secret.safetensors", "sub/x.safetensors", ".."])
def test_a_sharded_index_pointing_outside_its_folder_is_refused(shard, tmp_path, tally):
    """Before: "../secret.safetensors" and absolute paths were read from wherever they pointed."""
    from safetensors.torch import save_file

    save_file({"w": torch.randn(4, 4)}, tmp_path / "secret.safetensors")
    shard = shard.replace("/ABS", str(tmp_path))
    folder = _hf_folder(tmp_path, {"w": shard})
    with pytest.raises(ValueError, match=rf"index '.*model.safetensors.index.json' lists shard {shard!r} for 'w', "
                                         r"which is not a file name in its folder"):
        load_source(folder)
    tally("bad_inputs")


@pytest.mark.parametrize("index, says", [
    ("{not json", r" is not valid JSON \(line 1"),
    (json.dumps([1, 2]), r" holds a list, expected an object with a 'weight_map'"),
    (json.dumps({"weight_map": ["w"]}), r": its 'weight_map' is a list, expected an object"),
    (json.dumps({"weight_map": {"w": 5}}), r" lists shard 5 for 'w', which is not a file name in its folder"),
], ids=["not-json", "a-list", "weight-map-list", "shard-not-a-string"])
def test_a_malformed_sharded_index_is_named(index, says, tmp_path, tally):
    """Before: raw JSONDecodeError, AttributeError, TypeError."""
    folder = _hf_folder(tmp_path, index)
    with pytest.raises(ValueError, match=r"index '.*model.safetensors.index.json'" + says):
        load_source(folder)
    tally("bad_inputs")


def test_a_shard_that_is_a_folder_is_said_as_such(tmp_path, tally):
    folder = _hf_folder(tmp_path, {"w": "model-00002-of-00002.safetensors"})
    (folder / "model-00002-of-00002.safetensors").mkdir()
    with pytest.raises(FileNotFoundError, match=r"shard 'model-00002-of-00002.safetensors' listed in its index is a "
                                                r"folder, not a file"):
        load_source(folder)
    tally("bad_inputs")


@pytest.mark.parametrize("content", [(2**62).to_bytes(8, "little") + b'{"w":1}', b"", b"\x05"],
                         ids=["header-length-2^62", "empty", "one-byte"])
@pytest.mark.parametrize("where", ["folder", "file"])
def test_a_damaged_safetensors_file_is_named_with_the_fix(content, where, tmp_path, tally):
    """Before: a raw SafetensorError ("header too large"), through torch.load's own safetensors path."""
    (tmp_path / "hf").mkdir()
    path = tmp_path / "hf" / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"pruning source '{path}' .*(safetensors: |is empty).*"
                                         r"(save_pretrained|re-copy)"):
        load_source(path.parent if where == "folder" else path)
    tally("bad_inputs")


def test_a_damaged_safetensors_file_given_to_export_is_named(tmp_path, tally):
    """Before: a raw SafetensorError out of `lightning-slt export model.safetensors`."""
    from lightning_slt.export.checkpoint import export_checkpoint

    path = tmp_path / "model.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b'{"w":1}')
    with pytest.raises(ValueError, match=r"cannot read checkpoint '.*model.safetensors'.*header too large"):
        export_checkpoint(path, tmp_path / "x.ticket")
    tally("bad_inputs")


def test_a_huge_safetensors_tensor_is_refused_by_safetensors_itself(tmp_path, tally):
    """Already good: safetensors checks shape x dtype against the data offsets and the file."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 64]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    with pytest.raises(ValueError, match=r"safetensors: .*invalid shape, data type, or offset"):
        load_source(path)
    tally("bad_inputs")


# Ticket headers that contradict their data, each with what the refusal names.
def _alias_shape(header):
    header["tensors"].append({**_record(header, "bias"), "name": "tied", "storage": "alias", "alias_of": "bias",
                              "shape": [65]})


def _alias_later(header):
    header["tensors"].insert(0, {"name": "tied", "shape": [64], "dtype": "float32", "storage": "alias",
                                 "alias_of": "bias"})


def _duplicate(header):
    header["tensors"].append(dict(_record(header, "bias")))


def _rice_k(header):
    _record(header, "few")["mask"]["rice_k"] = 62


HEADERS = {
    "alias_with_another_shape": (_alias_shape, r"tensor 'tied' is declared as an alias of 'bias' with shape \[65\] "
                                               r"and dtype float32, but 'bias' has shape \[64\]"),
    "alias_of_a_later_tensor": (_alias_later, r"tensor 'tied' is an alias of 'bias', which is not a tensor stored "
                                              r"before it"),
    "duplicate_name": (_duplicate, r"tensor 'bias' is declared twice"),
    "negative_dimension": (lambda h: _record(h, "bias").update(shape=[-64]), r"tensor 'bias' has shape \[-64\]"),
    "fractional_dimension": (lambda h: _record(h, "bias").update(shape=[6.4]), r"tensor 'bias' has shape \[6.4\]"),
    "tensors_not_a_list": (lambda h: h.update(tensors={"bias": 1}), r"the header's tensors are a dict, expected "
                                                                     r"a list"),
    "rice_parameter_edited": (_rice_k, r"tensor 'few': mask code's remainder stream has \d+ bytes, \d+ remainders "
                                       r"of 62 bits need \d+"),
    "kept_count_edited": (lambda h: _record(h, "few").update(kept=10**12), r"tensor 'few' declares 1000000000000 "
                                                                          r"kept values"),
    "model_config_not_an_object": (lambda h: h.update(model_config=[1]), r"the header's model_config is a list, "
                                                                         r"expected an object"),
    "section_beyond_payload": (lambda h: _record(h, "bias")["values"].update(offset=2**62),
                               r"tensor 'bias': its values section \[4611686018427387904, .*\) lies outside the "
                               r"\d+-byte payload"),
}


@pytest.mark.parametrize("case", HEADERS)
def test_a_ticket_header_that_contradicts_its_data_is_refused(case, tmp_path, tally):
    """Before: an alias or a duplicate silently took another tensor's shape or place, a list as
    model_config failed later in load_ticket with an AttributeError; the others were refused as
    "ticket tensors cannot be rebuilt: <torch's words>", naming no tensor."""
    edit, says = HEADERS[case]
    valid = _valid_ticket(tmp_path / "valid.ticket")
    path = _edit(valid, tmp_path / f"{case}.ticket", edit)
    with pytest.raises(TicketError, match=rf"{path}: {says}") as raised:
        read_ticket(path)
    assert REEXPORT in str(raised.value)
    tally("bad_inputs")


def test_a_negative_size_cannot_serve_header_bytes_as_the_tokenizer(tmp_path, tally):
    """Before: payload.nbytes -8 and a tokenizer 8 bytes longer than the rest of the file (its
    checksum recomputed) was read, the header's last 8 bytes served as the tokenizer."""
    header, rest = _parts(_valid_ticket(tmp_path / "valid.ticket"))
    header_tail = b'sion":1}'  # the last 8 bytes of the sorted JSON header ("version": 1 closes it)
    header.update(tensors=[], payload={"nbytes": -8, "sha256": hashlib.sha256(b"").hexdigest()},
                  tokenizer={"nbytes": len(rest) + 8, "embedded": True,
                             "sha256": hashlib.sha256(header_tail + rest).hexdigest()})
    path = _assemble(tmp_path / "negative.ticket", header, rest)
    assert path.read_bytes()[-len(rest) - 8 : -len(rest)] == header_tail
    with pytest.raises(TicketError, match=rf"{path}: the header's payload.nbytes must be a non-negative integer, got -8; "
                                          r"the header does not match"):
        read_ticket(path)
    tally("bad_inputs")


def test_a_rice_quotient_that_would_wrap_int64_is_refused(tmp_path, tally):
    """Before: quotient 4 << k=62 wrapped to 0 in int64, so a code that points 2^64 entries past
    the end decoded as "keep entry 0" and the ticket was read."""
    path = _rice_ticket(tmp_path / "wrap.ticket", 1, [0, 0, 0, 0, 1], 62, [0])
    with pytest.raises(TicketError, match=rf"{path}: tensor 'w': mask code has a gap of at least 4 << 62 entries, past "
                                          r"the end of a tensor of 1"):
        read_ticket(path)
    tally("bad_inputs")


def test_translate_with_a_fifo_as_ticket_is_refused_at_once(tmp_path, tally):
    """Before: `lightning-slt translate --ticket <FIFO>` hung (its model-file check skipped what is not
    a regular file, and the winning-ticket check then opened it)."""
    fifo = tmp_path / "model.ticket"
    os.mkfifo(fifo)
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    code = ("from lightning_slt.export.translate import translate_main\n"
            f"translate_main(['--ticket', {str(fifo)!r}, '--input', {str(tmp_path / 'in.txt')!r}, "
            f"'--output', {str(tmp_path / 'out.txt')!r}])")
    try:
        done = _in_subprocess(code, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("translate waited on a FIFO")
    assert f"--ticket {fifo} is not a regular file (a FIFO)" in done.stderr, done.stderr[-1500:]
    assert not (tmp_path / "out.txt").exists()
    tally("bad_inputs")
