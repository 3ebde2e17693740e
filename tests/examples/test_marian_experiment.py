"""examples/marian through `lightning-slt experiment`: an SLT chain and LT rounds on Hugging Face's
MarianMTModel (tiny, real Multi30k) started from a save_pretrained folder: the dense run fine-tunes
it, every LT round's θ0 is the folder's weights bit for bit, the frozen position tables are never
pruned or changed, and the report is in the module's own BLEU. Budget: ~90 s."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("transformers", reason="the examples extras install transformers: pip install -e .[examples]")

from safetensors.torch import load_file

from examples.marian.marian import MarianTranslation
from lightning_slt.data import TranslationDataModule

REPO = Path(__file__).resolve().parents[2]
TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "attention_heads": 2, "ffn_dim": 64,
        "max_positions": 128, "max_new_tokens": 8, "lr": 3e-3, "warmup_steps": 2}
POSITION_TABLES = ("model.model.encoder.embed_positions.weight", "model.model.decoder.embed_positions.weight")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("marian")
    data = {"data_root": str(data_root), "cache_dir": str(root / "spm"), "vocab_size": 300, "train_subset": 256,
            "valid_subset": 16, "test_subset": 16, "max_tokens": 512, "max_len": 100, "max_positions": 128}
    vocab = TranslationDataModule("multi30k", "en", "de", **data).vocab_size
    torch.manual_seed(11)
    MarianTranslation(vocab_size=vocab, **TINY).model.save_pretrained(root / "pretrained")
    base = yaml.safe_load((REPO / "examples/marian/base.yaml").read_text())
    base["model"]["init_args"].update(TINY)
    base["data"]["init_args"].update(data)
    base["trainer"].update({"max_steps": 20, "val_check_interval": 10, "limit_val_batches": 1,
                            "limit_test_batches": 1, "default_root_dir": str(root / "runs")})
    (root / "base.yaml").write_text(yaml.safe_dump(base))
    config = {"base": [str(root / "base.yaml")], "methods": ["slt", "lt"], "targets": [0.5, 0.8],
              "output_dir": str(root / "exp"), "pretrained": str(root / "pretrained")}
    (root / "exp.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(root / "exp.yaml")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def _checkpoint(root: Path, run: str) -> dict:
    return torch.load(root / "exp/seed0" / run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_every_lt_round_starts_from_the_pretrained_folder_bit_for_bit(experiment):
    pretrained = {f"model.{name}": value for name, value in load_file(experiment / "pretrained/model.safetensors").items()}
    dense_theta0 = _checkpoint(experiment, "dense")["callbacks"]["WeightRewind{'step': 0}"]["snapshot"]
    assert all(torch.equal(dense_theta0[name], value) for name, value in pretrained.items() if name in dense_theta0)
    assert "model.model.shared.weight" in dense_theta0  # the tied embedding, once
    for run in ("dense/lt_0.50", "dense/lt_0.50/lt_0.80"):
        checkpoint = _checkpoint(experiment, run)
        theta0, masks = checkpoint["callbacks"]["WeightRewind{'step': 0}"]["snapshot"], checkpoint["lightning_slt"]["masks"]
        for name, mask in masks.items():
            assert torch.equal(theta0[name][mask], pretrained[name][mask]), (run, name)  # bit for bit
            assert not theta0[name][~mask].any(), (run, name)
        assert all(int((~m).sum()) == round(float(run[-4:]) * m.numel()) for m in masks.values()), run


@pytest.mark.slow
def test_the_position_tables_are_never_pruned_or_changed(experiment):
    dense = _checkpoint(experiment, "dense")["state_dict"]
    for run in ("dense/slt_0.50", "dense/slt_0.50/slt_0.80", "dense/lt_0.50/lt_0.80"):
        checkpoint = _checkpoint(experiment, run)
        assert not set(POSITION_TABLES) & set(checkpoint["lightning_slt"]["masks"]), run
        for table in POSITION_TABLES:
            assert torch.equal(checkpoint["state_dict"][table], dense[table]), (run, table)


@pytest.mark.slow
def test_the_report_is_in_the_modules_own_bleu(experiment):
    table = (experiment / "exp/results.md").read_text()
    assert "| Sparsity | Memory | SLT BLEU | SLT TER | LT BLEU | LT TER |" in table
    metrics = json.loads((experiment / "exp/seed0/dense/slt_0.50/slt_0.80/metrics.json").read_text())
    assert set(metrics["test"]) >= {"bleu", "chrf", "loss"} and metrics["ticket"] is None
    model = MarianTranslation(vocab_size=_checkpoint(experiment, "dense")["hyper_parameters"]["vocab_size"], **TINY)
    unique = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert metrics["parameters"] == unique  # the tied embedding once, not under its four names
    masks = _checkpoint(experiment, "dense/slt_0.50/slt_0.80")["lightning_slt"]["masks"]
    assert "model.model.shared.weight" in masks and "model.lm_head.weight" not in masks  # tied: pruned once
    assert all(int((~m).sum()) == round(0.8 * m.numel()) for m in masks.values())  # exact, per tensor
