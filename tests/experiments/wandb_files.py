"""Reading what W&B wrote in offline mode, without W&B's servers: the run's ``.wandb`` file is a
LevelDB-style log (32 KiB blocks, 7-byte record headers) of ``wandb_internal_pb2.Record``s."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(path: Path):
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def read_run(path: Path) -> dict:
    """{"run": run record fields, "config": {...}, "history": [ {key: value}, ... ]}."""
    out = {"run": {}, "config": {}, "history": []}
    for payload in _payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out["run"] = {"group": run.run_group, "job_type": run.job_type, "display_name": run.display_name, "id": run.run_id}
            out["config"].update({u.key: json.loads(u.value_json) for u in run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            out["history"].append({(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    return out


def runs_under(folder: Path) -> list[dict]:
    return [read_run(path) for path in sorted(Path(folder).glob("**/wandb/offline-run-*/run-*.wandb"))]


def logged_artifacts(folder: Path, expect: int = 0, timeout: float = 60.0) -> list[tuple[str, wandb_internal_pb2.ArtifactRecord]]:
    """(run id, artifact record) for every artifact the offline runs under `folder` logged.

    With `expect`, wait up to `timeout` seconds for that many: W&B's service process writes the
    .wandb file itself, and on a loaded machine its last records can land after ``finish()``
    has returned (seen once in CI: the run's file held no artifact record yet).
    """
    deadline = time.monotonic() + timeout
    while True:
        found, kinds = [], set()
        for log in sorted(folder.glob("**/offline-run-*/run-*.wandb")):
            for payload in _payloads(log):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(payload)
                kinds.add(record.WhichOneof("record_type"))
                if record.WhichOneof("record_type") == "artifact":
                    found.append((log.stem.removeprefix("run-"), record.artifact))
        if len(found) >= expect:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {expect} artifact records under {folder} after {timeout:.0f} s; "
                                 f"record types seen: {sorted(k for k in kinds if k)}")
        time.sleep(0.5)
