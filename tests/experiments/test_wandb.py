"""W&B offline: the runs' own files hold the logged keys, config, group and job type."""

import json
import os
from pathlib import Path

from lightning_slt.export import load_ticket
from lightning_slt.artifacts.ticket import read_ticket

from lightning_slt.experiments import ExperimentConfig, run_experiment

from .wandb_files import logged_artifacts, runs_under

BASE = str(Path(__file__).parent / "tiny_base.yaml")


def test_offline_runs_and_report_reach_wandb_files(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = ExperimentConfig(base=[BASE], methods=["slt"], targets=[0.5], output_dir=str(tmp_path / "exp"),
                              wandb=True, wandb_project="lightning_slt_test", name="wandb-test")
    run_experiment(config)
    runs = {r["run"]["display_name"]: r for r in runs_under(tmp_path / "exp")}
    assert set(runs) == {"seed0/dense", "seed0/dense/slt_0.50", "report"}
    slt = runs["seed0/dense/slt_0.50"]
    assert slt["run"]["group"] == "wandb-test" and slt["run"]["job_type"] == "slt"
    assert slt["config"]["sparsity"] == 0.5 and slt["config"]["lineage"] == ["dense"]
    assert slt["config"]["mask_from"] == "dense" and slt["config"]["weights_from"] == "dense"
    keys = set().union(*slt["history"])
    assert {"train/loss", "val/bleu", "val/chrf", "val/ter", "sparsity/global", "params/remaining",
            "mask/jaccard_previous", "sign/agreement_rewind", "test/bleu"} <= keys
    assert any(k.startswith("sparsity/model.") for k in keys)  # per-layer sparsity
    assert [h["sparsity/global"] for h in slt["history"] if "sparsity/global" in h][-1] == 0.5
    report = runs["report"]
    assert report["run"]["job_type"] == "report"
    logged = {k: v for h in report["history"] for k, v in h.items()}  # nested keys are dotted
    assert logged["results._type"] == "table-file" and logged["results.nrows"] == 2  # dense + 50 %
    assert logged["bleu_vs_sparsity._type"] == "image-file" and logged["bleu_vs_sparsity.format"] == "png"
    # every run's best checkpoint is a ticket beside it, logged to its own W&B run as a model artifact
    artifacts = {record.name: (run_id, record) for run_id, record in logged_artifacts(tmp_path / "exp", expect=2)
                 if record.type == "model"}  # the report's Table is an artifact too
    assert set(artifacts) == {"wandb-test-seed0-dense", "wandb-test-seed0-dense-slt_0.50"}
    run_id, record = artifacts["wandb-test-seed0-dense-slt_0.50"]
    assert run_id == slt["run"]["id"] and set(record.aliases) == {"latest", "best"}
    metadata = json.loads(record.metadata)
    ticket_path = tmp_path / "exp" / "seed0" / "dense" / "slt_0.50" / "model.ticket"
    finished = json.loads((ticket_path.parent / "metrics.json").read_text())
    assert metadata["sparsity"] == read_ticket(ticket_path).extra["sparsity"] == finished["sparsity"] == 0.5
    assert metadata["lineage"] == ["dense"] and metadata["methods"] == ["slt"]
    assert metadata["test_bleu"] == finished["test"]["bleu"] and metadata["source_checkpoint"] == "best.ckpt"
    assert finished["ticket"]["file"] == ticket_path.stat().st_size
    assert load_ticket(ticket_path).hparams["d_model"] == 32
    assert os.environ["WANDB_MODE"] == "offline"
