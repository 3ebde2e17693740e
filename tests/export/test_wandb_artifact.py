"""Tickets as W&B artifacts, offline: logged through a WandbLogger and by `lightning-slt export
--wandb-artifact`, then read back from the run's own .wandb transaction log."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
import wandb
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from lightning_slt.export.checkpoint import export_checkpoint
from lightning_slt.export.cli import export_main
from lightning_slt.artifacts.ticket import FORMAT_VERSION, TicketError, read_ticket
from lightning_slt.export.wandb_artifact import log_ticket_artifact
from tests.experiments.wandb_files import logged_artifacts
from tests.export.test_winning_ticket import train_rewound_checkpoint


@pytest.fixture(scope="module")
def checkpoint(data_root, tmp_path_factory) -> Path:
    return train_rewound_checkpoint(data_root, tmp_path_factory.mktemp("run"))


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """Offline W&B with every folder it writes (runs, artifact staging, cache) under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored afterwards; WandbLogger(offline=True) rewrites it
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable, folder in [("WANDB_DIR", "runs"), ("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"),
                             ("WANDB_ARTIFACT_DIR", "artifacts"), ("WANDB_CONFIG_DIR", "config")]:
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / folder))
    wandb.teardown()  # W&B reads these variables once per process, at its first setup
    yield
    wandb.teardown()


def _md5_b64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def test_a_ticket_logged_through_a_wandb_logger_reaches_the_offline_run(checkpoint, tmp_path):
    ticket_path = tmp_path / "slt 0.80.ticket"
    sizes = export_checkpoint(checkpoint, ticket_path)
    logger = WandbLogger(project="lightning_slt_test", save_dir=str(tmp_path / "runs"), offline=True)
    artifact = log_ticket_artifact(ticket_path, logger, aliases=["best"], metadata={"test_bleu": 1.5})
    run_id = logger.experiment.id
    logger.experiment.finish()

    [(logged_run, record)] = logged_artifacts(tmp_path / "runs", expect=1)
    assert logged_run == run_id and record.run_id == run_id and record.project == "lightning_slt_test"
    assert record.name == artifact.name == "slt-0.80" and record.type == "model"
    assert set(record.aliases) == {"latest", "best"}
    assert record.description == "lightning_slt ticket at sparsity 0.7999"
    metadata = json.loads(record.metadata)
    ticket = read_ticket(ticket_path)
    assert metadata["kind"] == "ticket" and metadata["format"] == "lightning_slt.ticket"
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["sha256"] == hashlib.sha256(ticket_path.read_bytes()).hexdigest()
    assert metadata["bytes"] == sizes == ticket.sizes
    assert metadata["sparsity"] == ticket.extra["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert metadata["pruned"] == sum(int((~m).sum()) for m in ticket.masks.values())
    assert metadata["source_checkpoint"] == "last.ckpt" and metadata["global_step"] == 8
    assert metadata["tokenizer_embedded"] is True and metadata["values_dtype"] == "float32"
    assert metadata["model_config"]["hparams"]["d_model"] == 32 and metadata["test_bleu"] == 1.5
    [entry] = record.manifest.contents
    assert entry.path == "slt 0.80.ticket" and entry.size == ticket_path.stat().st_size
    assert entry.digest == _md5_b64(ticket_path)  # W&B's content digest of the very file
    assert record.digest == artifact.digest


def test_export_command_logs_the_winning_ticket_as_an_artifact(checkpoint, tmp_path, capsys):
    out = tmp_path / "wt.ticket"
    argv = [str(checkpoint), "--out", str(out), "--winning-ticket", "--wandb-artifact",
            "--wandb-project", "lightning_slt_test", "--artifact-name", "slt-round-1", "--artifact-alias", "s0.80"]
    assert export_main(argv) == 0
    printed = json.loads(capsys.readouterr().out)  # still exactly one JSON line on stdout
    [(run_id, record)] = logged_artifacts(tmp_path / "runs", expect=1)
    assert printed["artifact"] == {"name": "slt-round-1", "type": "model", "digest": record.digest,
                                   "project": "lightning_slt_test", "run_id": run_id, "mode": "offline"}
    assert record.name == "slt-round-1" and record.type == "model" and set(record.aliases) == {"latest", "s0.80"}
    metadata = json.loads(record.metadata)
    assert metadata["kind"] == "winning_ticket" and metadata["rewind_step"] == 2 and metadata["recorded_steps"] == [2]
    assert metadata["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert metadata["bytes"]["file"] == out.stat().st_size == printed["bytes"]["file"]
    assert record.description == "lightning_slt winning_ticket at sparsity 0.7999, weights of step 2"
    [entry] = record.manifest.contents
    assert entry.path == "wt.ticket" and entry.digest == _md5_b64(out)


def test_bad_tickets_and_loggers_are_refused_before_anything_is_logged(checkpoint, tmp_path, monkeypatch):
    ticket_path = tmp_path / "m.ticket"
    export_checkpoint(checkpoint, ticket_path)
    with pytest.raises(ValueError, match="run_or_logger must be a wandb Run .* or a Lightning WandbLogger, "
                                         "got CSVLogger"):
        log_ticket_artifact(ticket_path, CSVLogger(str(tmp_path)))
    logger = WandbLogger(project="lightning_slt_test", save_dir=str(tmp_path / "runs"), offline=True)
    with pytest.raises(ValueError, match=r"metadata may not redefine what the ticket records: \['sha256', 'sparsity'\]"):
        log_ticket_artifact(ticket_path, logger, metadata={"sparsity": 0.5, "sha256": "x"})
    data = bytearray(ticket_path.read_bytes())
    data[-1] ^= 0x01
    (tmp_path / "bad.ticket").write_bytes(bytes(data))
    with pytest.raises(TicketError, match=r"bad.ticket: tokenizer checksum mismatch"):
        log_ticket_artifact(tmp_path / "bad.ticket", logger)
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # another rank of a DDP job: its WandbLogger has no run
    assert log_ticket_artifact(ticket_path, logger) is None
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    logger.experiment.finish()
    assert list((tmp_path / "runs").glob("**/offline-run-*/run-*.wandb"))  # the run exists, without artifacts
    assert logged_artifacts(tmp_path / "runs") == []
