"""The ticket file: a pruned model's weights, masks, config and tokenizer in one compact file.

Why a format of our own: a Lightning checkpoint of a 90 %-sparse model still stores every zero
(4 bytes per entry), and torch.prune/OpenLTH store masks as fp32/int32 (32x larger than needed,
anchors.md §5). A ticket stores, for each pruned tensor, only its kept values plus a mask coded
near its entropy (`mask_codec`), and every other tensor dense. It is self-describing and checked,
so a file copied between machines either loads bit-identically or is refused with a reason.

Layout (little-endian)::

    magic      8 bytes   b"LSLTTKT\\x00"
    version    uint32    FORMAT_VERSION
    header_len uint64    length of the JSON header
    header_sha 32 bytes  sha256 of the JSON header
    header     JSON      tensors (name, shape, dtype, storage, offsets, mask codec parameters),
                         model config, tokenizer sha256/size, payload size and sha256, extra
    payload    bytes     tensor sections, each 16-byte aligned (offsets relative to here)
    tokenizer  bytes     the sentencepiece model proto, if embedded (own section, so sizes can
                         be reported with and without it)
"""

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightning_slt.atomic import write_bytes
from .loading import DOES_NOT_EXIST, not_a_regular_file
from .mask_codec import EncodedMask, decode_mask, encode_mask

MAGIC = b"LSLTTKT\x00"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ32s")  # magic, version, header length, header sha256
_ALIGN = 16

# The one bound on what a header may declare. Every size in it is exact and checked against the
# bytes present before anything is allocated (`_checked_records`): sections lie in the payload, a
# dense tensor's entries x item size are its section's bytes, a pruned tensor's kept count is its
# stored values and its mask code's, each mask stream has the bits its parameters say. Only a
# mask code describes more entries than it has bytes (that is its job: gaps of any length cost a
# few bits), so the entries of a whole ticket are bounded by its header and payload bytes:
# 2048 per byte lies above a 99.99 %-sparse tensor with float32 values (1612 entries per byte;
# float16: 2380) and below a 2^30-entry tensor declared by a 292 KB file (3677).
MAX_ENTRIES_PER_BYTE = 2048
_REEXPORT = ("the header does not match the ticket's data (damaged, or edited after it was written): re-export it "
             "from its checkpoint with `lightning-slt export <checkpoint>`")

VALUES_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPES = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16,
    "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}  # fmt: skip
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class TicketError(ValueError):
    """A ticket file that cannot be read: wrong magic or version, truncated or corrupted."""


@dataclass
class Ticket:
    """The contents of a ticket file.

    Attributes:
        state_dict: every tensor, pruned entries as 0.0, in its original dtype. Tensors that
            shared storage when written (tied weights) share it again.
        masks: bool mask (True = kept) per pruned tensor, keyed like `state_dict`.
        model_config: the JSON config the writer stored (for a TranslationModule, its hparams).
        tokenizer_proto: the sentencepiece model bytes, or None if not embedded.
        tokenizer_sha256: sha256 hex of the tokenizer bytes the ticket was written with, or None.
        values_dtype: dtype the floating-point values were stored in.
        extra: free-form JSON metadata from the writer.
        sizes: bytes per part: "file", "header", "payload" (all tensor data), "values" (kept
            values of pruned tensors), "masks", "dense" (unpruned tensors), "tokenizer".
    """

    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    tokenizer_proto: bytes | None
    tokenizer_sha256: str | None
    values_dtype: str
    extra: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def write_ticket(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    tokenizer_proto: bytes | None = None,
    values_dtype: str = "float32",
    extra: dict[str, Any] | None = None,
    embed_tokenizer: bool = True,
) -> dict[str, int]:
    """Write a ticket atomically (temp file, then rename) and return its sizes (see `Ticket`).

    A tensor is pruned if `masks` has an entry for it: only its kept values are stored, and its
    pruned entries must already be zero (they are rebuilt as +0.0). Floating-point tensors are
    stored in `values_dtype`; with "float32" a float32 state_dict is rebuilt bit-identical.
    With `embed_tokenizer=False` only the tokenizer's sha256 is recorded.

    Raises:
        ValueError: on an unknown `values_dtype`, a mask that does not fit its tensor, a pruned
            entry that is not zero, a config/extra that is not JSON, or more entries than
            `read_ticket` accepts for the file's size (`MAX_ENTRIES_PER_BYTE`).
    """
    if values_dtype not in VALUES_DTYPES:
        raise ValueError(f"values_dtype must be one of {sorted(VALUES_DTYPES)}, got {values_dtype!r}")
    _check_masks(state_dict, masks)
    payload = _Payload()
    records, counted = _tensor_records(state_dict, masks, values_dtype, payload)
    payload_bytes = b"".join(payload.sections)
    tokenizer = _tokenizer_header(tokenizer_proto, embed_tokenizer)
    tokenizer_section = bytes(tokenizer_proto) if tokenizer is not None and embed_tokenizer else b""
    header = {
        "format": "lightning_slt.ticket",
        "version": FORMAT_VERSION,
        "values_dtype": values_dtype,
        "model_config": _json_ready("model_config", model_config),
        "extra": _json_ready("extra", extra or {}),
        "tensors": records,
        "payload": {"nbytes": len(payload_bytes), "sha256": hashlib.sha256(payload_bytes).hexdigest()},
        "tokenizer": tokenizer,
    }
    header_bytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes), hashlib.sha256(header_bytes).digest())
    _check_entries(counted, len(prefix) + len(header_bytes) + len(payload_bytes), reading=False)
    write_bytes(Path(path), [prefix, header_bytes, payload_bytes, tokenizer_section])
    return {
        **payload.sizes,
        "header": len(prefix) + len(header_bytes),
        "payload": len(payload_bytes),
        "tokenizer": len(tokenizer_section),
        "file": len(prefix) + len(header_bytes) + len(payload_bytes) + len(tokenizer_section),
    }


class _Payload:
    """The payload being written: sections, each 16-byte aligned, and the bytes per kind."""

    def __init__(self) -> None:
        self.sections: list[bytes] = []
        self.offset = 0
        self.sizes = {"values": 0, "masks": 0, "dense": 0}

    def add(self, data: bytes, kind: str) -> dict[str, int]:
        """Append `data` (a "values", "masks" or "dense" section); return its offset and size."""
        padding = (-self.offset) % _ALIGN
        self.sections.append(b"\0" * padding + data)
        self.offset += padding
        record = {"offset": self.offset, "nbytes": len(data)}
        self.offset += len(data)
        self.sizes[kind] += len(data)
        return record


def _tensor_records(state_dict: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], values_dtype: str,
                    payload: _Payload) -> tuple[list[dict], list["_Record"]]:
    """Each tensor's header record (its data added to `payload`), and what the reader's bound counts.

    A tensor sharing storage with an earlier one (a tied weight) is stored once, as an alias.
    """
    records: list[dict] = []
    counted: list[_Record] = []
    first_by_storage: dict[tuple, str] = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        record: dict[str, Any] = {"name": name, "shape": list(tensor.shape), "dtype": _dtype_name(name, tensor)}
        records.append(record)
        key = storage_key(tensor)
        if key is not None and key in first_by_storage:
            record.update(storage="alias", alias_of=first_by_storage[key], masked=name in masks)
            continue
        if key is not None:
            first_by_storage[key] = name
        stored = _stored_dtype(tensor.dtype, values_dtype)
        record["stored_dtype"] = _DTYPE_NAMES[stored]
        counted.append(_Record(name, tuple(tensor.shape), tensor.dtype, "masked" if name in masks else "dense"))
        if name in masks:
            mask = masks[name].detach().cpu()
            encoded = encode_mask(mask)
            counted[-1].mask = encoded
            record.update(storage="masked", kept=encoded.kept, mask=encoded.params())
            record["mask"].update(payload.add(encoded.to_bytes(), "masks"))
            record["values"] = payload.add(_tensor_bytes(tensor[mask].to(stored)), "values")
        else:
            record["storage"] = "dense"
            record["values"] = payload.add(_tensor_bytes(tensor.to(stored)), "dense")
    return records, counted


def _tokenizer_header(tokenizer_proto: bytes | None, embedded: bool) -> dict[str, Any] | None:
    """The header's tokenizer entry: its sha256 and size, and whether its bytes are in the file."""
    if tokenizer_proto is None:
        return None
    if not isinstance(tokenizer_proto, (bytes, bytearray)):
        raise ValueError(f"tokenizer_proto must be bytes or None, got {type(tokenizer_proto).__name__}")
    return {"sha256": hashlib.sha256(tokenizer_proto).hexdigest(), "nbytes": len(tokenizer_proto),
            "embedded": bool(embedded)}


def read_ticket(path: str | os.PathLike) -> Ticket:
    """Read and verify a ticket written by `write_ticket`.

    Every size the header declares is checked against the bytes present before any tensor is
    built (see `MAX_ENTRIES_PER_BYTE`), so a damaged or crafted header costs no more memory than
    the file itself.

    Raises:
        TicketError: naming the file and the problem: not a regular file, not a ticket (magic),
            an unsupported format version, truncated or trailing data, a header or payload
            checksum mismatch, or a header that does not match the data (naming the tensor).
    """
    path = Path(path)
    data = _read_file(path)
    header = _read_header(path, data)
    start = _PREFIX.size + _header_len(data)
    try:
        payload_nbytes = _declared(header.get("payload"), "payload", "nbytes")
        tokenizer_info = header.get("tokenizer")
        embedded = tokenizer_info is not None and _declared(tokenizer_info, "tokenizer", "embedded", bool)
        tokenizer_nbytes = _declared(tokenizer_info, "tokenizer", "nbytes") if embedded else 0
    except ValueError as error:
        raise TicketError(f"{path}: {error}; {_REEXPORT}") from None
    expected = start + payload_nbytes + tokenizer_nbytes
    if len(data) < expected:
        raise TicketError(f"{path}: ticket is truncated: expected {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise TicketError(f"{path}: ticket has {len(data) - expected} bytes of trailing data after its last section")
    payload = memoryview(data)[start : start + payload_nbytes]
    if hashlib.sha256(payload).hexdigest() != header["payload"].get("sha256"):
        raise TicketError(f"{path}: payload checksum mismatch: the ticket file is corrupted")
    tokenizer_proto = None
    if embedded:
        tokenizer_proto = data[start + payload_nbytes : expected]
        if hashlib.sha256(tokenizer_proto).hexdigest() != tokenizer_info.get("sha256"):
            raise TicketError(f"{path}: tokenizer checksum mismatch: the ticket file is corrupted")
    try:
        records = _checked_records(header.get("tensors"), payload)
        _check_entries(records, start + payload_nbytes, reading=True)
        state_dict, masks, sizes = _rebuild_tensors(records, payload)
    except ValueError as error:
        raise TicketError(f"{path}: {error}; {_REEXPORT}") from None
    sizes.update(header=start, payload=payload_nbytes, tokenizer=tokenizer_nbytes, file=len(data))
    model_config, extra = header.get("model_config") or {}, header.get("extra") or {}
    for key, value in (("model_config", model_config), ("extra", extra)):
        if not isinstance(value, dict):  # its readers look keys up in it
            raise TicketError(f"{path}: the header's {key} is a {type(value).__name__}, expected an object; {_REEXPORT}")
    return Ticket(
        state_dict=state_dict,
        masks=masks,
        model_config=model_config,
        tokenizer_proto=tokenizer_proto,
        tokenizer_sha256=None if tokenizer_info is None else tokenizer_info.get("sha256"),
        values_dtype=header.get("values_dtype", "float32"),
        extra=extra,
        sizes=sizes,
    )


def read_ticket_header(path: str | os.PathLike) -> dict[str, Any]:
    """The verified JSON header of a ticket (magic, version, checksum), read without its payload:
    what a command needs to know what a ticket holds (``extra``'s kind and step, the model
    config) before loading it. Its tensor records are not checked (`read_ticket` does that).

    Raises:
        TicketError: as `read_ticket`, for the file, its prefix and its header.
    """
    path = Path(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PREFIX.size)
            if len(head) == _PREFIX.size:  # at most the file's bytes: a crafted length allocates nothing
                head += handle.read(min(_header_len(head), os.fstat(handle.fileno()).st_size))
    except OSError as error:
        raise TicketError(f"{path}: cannot read ticket: {error.strerror or error}") from error
    return _read_header(path, head)


def _check_regular_file(path: Path) -> None:
    """Asked before opening: a FIFO would block, /dev/zero never end."""
    problem = not_a_regular_file(path)
    if problem == DOES_NOT_EXIST:
        raise TicketError(f"{path}: cannot read ticket: No such file or directory")
    if problem:
        raise TicketError(f"{path}: cannot read ticket: it {problem}; pass a ticket file written by `lightning-slt "
                          "export`")


def _read_file(path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file."""
    _check_regular_file(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise TicketError(f"{path}: cannot read ticket: {error.strerror or error}") from error


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    if len(data) < _PREFIX.size:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            raise TicketError(f"{path}: not a lightning_slt ticket (magic bytes {data[:8]!r}, expected {MAGIC!r})")
        raise TicketError(
            f"{path}: ticket is truncated: {len(data)} bytes, shorter than its {_PREFIX.size}-byte prefix"
        )
    magic, version, header_len, header_sha = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise TicketError(f"{path}: not a lightning_slt ticket (magic bytes {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise TicketError(
            f"{path}: ticket format version {version} is not supported (this reader supports version "
            f"{FORMAT_VERSION}); re-export it with this lightning_slt version"
        )
    header_bytes = data[_PREFIX.size : _PREFIX.size + header_len]
    if len(header_bytes) < header_len:
        raise TicketError(f"{path}: ticket is truncated inside its header ({len(header_bytes)} of {header_len} bytes)")
    if hashlib.sha256(header_bytes).digest() != header_sha:
        raise TicketError(f"{path}: header checksum mismatch: the ticket file is corrupted")
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TicketError(f"{path}: ticket header is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        raise TicketError(f"{path}: ticket header is malformed (version field does not match the prefix)")
    return header


def _header_len(data: bytes) -> int:
    return _PREFIX.unpack_from(data)[2]


def _declared(record: Any, where: str, key: str, kind: type = int) -> Any:
    """A value the header declares: a non-negative integer (a size, a count, an offset) or a bool."""
    value = record.get(key) if isinstance(record, dict) else None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    wanted = "true or false" if kind is bool else "a non-negative integer"
    raise ValueError(f"the header's {where}.{key} must be {wanted}, got {value!r}")


@dataclass
class _Record:
    """One tensor of the header, checked against the payload (nothing decoded yet)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    storage: str  # "dense", "masked" or "alias"
    stored: torch.dtype | None = None  # dtype of the values section
    values: tuple[int, int] = (0, 0)  # (offset, nbytes) in the payload
    mask: EncodedMask | None = None
    alias_of: str = ""
    masked: bool = False  # an alias of a pruned tensor: shares its mask

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _checked_records(records: Any, payload: memoryview) -> list[_Record]:
    """Every record of the header, each size checked against the bytes present: its sections lie
    in the payload, a dense tensor's entries x item size are its values' bytes, a pruned tensor's
    kept count is its stored values and its mask code's (`EncodedMask.from_bytes`), and an alias
    has its tensor's shape and dtype.

    Raises:
        ValueError: naming the tensor and what does not match.
    """
    if not isinstance(records, list):
        raise ValueError(f"the header's tensors are a {type(records).__name__}, expected a list")
    checked: dict[str, _Record] = {}
    for record in records:
        name = record.get("name") if isinstance(record, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"a tensor record has name {name!r}, expected a string")
        if name in checked:
            raise ValueError(f"tensor {name!r} is declared twice")
        try:
            checked[name] = _checked_record(name, record, checked, payload)
        except (KeyError, TypeError) as error:
            raise ValueError(f"tensor {name!r}: its record lacks or has a malformed {error}") from None
    return list(checked.values())


def _checked_record(name: str, record: dict, earlier: dict[str, _Record], payload: memoryview) -> _Record:
    shape = record["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"tensor {name!r} has shape {shape!r}, expected a list of non-negative integers")
    checked = _Record(name, tuple(shape), _dtype_from_name(record["dtype"], name), record["storage"])
    if checked.storage == "alias":
        source = earlier.get(record["alias_of"])
        if source is None or source.storage == "alias":
            raise ValueError(f"tensor {name!r} is an alias of {record['alias_of']!r}, which is not a tensor stored "
                             "before it")
        if (source.shape, source.dtype) != (checked.shape, checked.dtype):
            raise ValueError(f"tensor {name!r} is declared as an alias of {source.name!r} with shape {list(shape)} "
                             f"and dtype {record['dtype']}, but {source.name!r} has shape {list(source.shape)} and "
                             f"dtype {_DTYPE_NAMES[source.dtype]}")
        checked.alias_of, checked.masked = source.name, bool(record.get("masked"))
        return checked
    if checked.storage not in ("dense", "masked"):
        raise ValueError(f"tensor {name!r} has unknown storage {checked.storage!r}")
    checked.stored = _dtype_from_name(record["stored_dtype"], name)
    checked.values = _section_bounds(name, "values", record["values"], payload)
    itemsize = torch.empty(0, dtype=checked.stored).element_size()
    stored_values, remainder = divmod(checked.values[1], itemsize)
    held = f"its values section holds {checked.values[1]} bytes ({stored_values} {_DTYPE_NAMES[checked.stored]} values)"
    if remainder:
        raise ValueError(f"tensor {name!r}: its values section has {checked.values[1]} bytes, not a whole number of "
                         f"{_DTYPE_NAMES[checked.stored]} values")
    if checked.storage == "dense":
        if checked.numel != stored_values:
            raise ValueError(f"tensor {name!r} declares {checked.numel} entries (shape {list(shape)}), but {held}")
        return checked
    kept = _declared(record, f"tensors[{name!r}]", "kept")
    if kept != stored_values:
        raise ValueError(f"tensor {name!r} declares {kept} kept values, but {held}")
    offset, nbytes = _section_bounds(name, "mask", record["mask"], payload)
    try:
        checked.mask = EncodedMask.from_bytes(checked.shape, record["mask"], payload[offset : offset + nbytes])
    except ValueError as error:
        raise ValueError(f"tensor {name!r}: {error}") from None
    if checked.mask.kept != kept:
        raise ValueError(f"tensor {name!r} declares {kept} kept values, but its mask code keeps {checked.mask.kept} "
                         f"of its {checked.numel} entries (shape {list(shape)})")
    return checked


def _section_bounds(name: str, kind: str, record: Any, payload: memoryview) -> tuple[int, int]:
    offset = _declared(record, f"tensors[{name!r}].{kind}", "offset")
    nbytes = _declared(record, f"tensors[{name!r}].{kind}", "nbytes")
    if offset + nbytes > len(payload):
        raise ValueError(f"tensor {name!r}: its {kind} section [{offset}, {offset + nbytes}) lies outside the "
                         f"{len(payload)}-byte payload")
    return offset, nbytes


def _check_entries(records: list[_Record], nbytes: int, reading: bool) -> None:
    """The one bound on what a ticket may declare: `MAX_ENTRIES_PER_BYTE` entries per byte of its
    header and payload, for the tensors it stores (an alias adds none)."""
    stored = [record for record in records if record.storage != "alias"]
    total = sum(record.numel for record in stored)
    if total <= MAX_ENTRIES_PER_BYTE * nbytes:
        return
    largest = max(stored, key=lambda record: record.numel)
    numbers = (f"{total} entries in its {nbytes} bytes of header and payload; at most {MAX_ENTRIES_PER_BYTE} entries "
               f"per byte are accepted (a 99.99 %-sparse tensor with float32 values has 1612)")
    if reading:
        raise ValueError(f"tensor {largest.name!r} declares {largest.numel} entries (shape {list(largest.shape)}), "
                         f"the ticket {numbers}")
    raise ValueError(f"this ticket could not be read back: it would hold {numbers}; tensor {largest.name!r} has "
                     f"{largest.numel} entries and {largest.mask.kept if largest.mask else largest.numel} kept. Leave "
                     "(almost) entirely pruned tensors out of the state_dict")


def _rebuild_tensors(records: list[_Record], payload: memoryview) -> tuple[dict, dict, dict[str, int]]:
    state_dict: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    sizes = {"values": 0, "masks": 0, "dense": 0}
    for record in records:
        name = record.name
        if record.storage == "alias":
            state_dict[name] = state_dict[record.alias_of]
            if record.masked and record.alias_of in masks:
                masks[name] = masks[record.alias_of]
            continue
        offset, nbytes = record.values
        values = _section_tensor(payload[offset : offset + nbytes], record.stored).to(record.dtype)
        if record.mask is None:
            sizes["dense"] += nbytes
            state_dict[name] = values.reshape(record.shape)
            continue
        try:
            mask = torch.from_numpy(decode_mask(record.mask))
        except ValueError as error:
            raise ValueError(f"tensor {name!r}: {error}") from None
        tensor = _zeros(record.shape, record.dtype)
        tensor.masked_scatter_(mask, values)  # 2x faster than tensor[mask] = values
        state_dict[name], masks[name] = tensor, mask
        sizes["values"] += nbytes
        sizes["masks"] += record.mask.nbytes
    return state_dict, masks, sizes


def _zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """torch.zeros through numpy's calloc where numpy has the dtype: the OS hands out zeroed
    pages, while torch.zeros fills them with OpenMP threads (10x slower on a busy 2-core machine)."""
    try:
        numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:  # bfloat16
        return torch.zeros(shape, dtype=dtype)
    return torch.from_numpy(np.zeros(shape, dtype=numpy_dtype))


def _section_tensor(raw_section: memoryview, dtype: torch.dtype) -> torch.Tensor:
    if not len(raw_section):
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(raw_section), dtype=dtype)  # a writable copy that torch may own


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def _stored_dtype(dtype: torch.dtype, values_dtype: str) -> torch.dtype:
    return VALUES_DTYPES[values_dtype] if dtype.is_floating_point else dtype


def storage_key(tensor: torch.Tensor) -> tuple | None:
    """Identity of a tensor's memory view: equal keys mean the same (tied) weights."""
    if tensor.numel() == 0:
        return None
    storage = tensor.untyped_storage().data_ptr()
    return (storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)


def _dtype_name(name: str, tensor: torch.Tensor) -> str:
    if tensor.dtype not in _DTYPE_NAMES:
        raise ValueError(
            f"tensor {name!r} has dtype {tensor.dtype}, which tickets do not store; known: {sorted(_DTYPES)}"
        )
    return _DTYPE_NAMES[tensor.dtype]


def _dtype_from_name(dtype: Any, tensor: str) -> torch.dtype:
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"tensor {tensor!r} has unknown dtype {dtype!r}; known: {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def _check_masks(state_dict: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    for name, mask in masks.items():
        if name not in state_dict:
            raise ValueError(f"masks[{name!r}] has no tensor of that name in state_dict")
        tensor = state_dict[name]
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"masks[{name!r}] must be a bool tensor, got {getattr(mask, 'dtype', type(mask))}")
        if mask.shape != tensor.shape:
            raise ValueError(f"masks[{name!r}] has shape {tuple(mask.shape)}, tensor has {tuple(tensor.shape)}")
        nonzero_pruned = int(torch.count_nonzero(tensor.detach().cpu()[~mask.cpu()]))
        if nonzero_pruned:
            raise ValueError(
                f"state_dict[{name!r}] has {nonzero_pruned} non-zero entries where masks[{name!r}] is False; "
                "zero the pruned entries (tensor * mask) before writing the ticket"
            )


def _json_ready(argument: str, value: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{argument} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{argument} must be JSON-serializable: {error}") from None
