"""Tiny real runs for the reliability suite, and the helpers that prove "nothing written".

The model is the real ``TranslationModule`` (one layer each side, width 16, dropout on) and the
data the real ``TranslationDataModule`` over the first 96 Multi30k en-de pairs with a 200-piece
sentencepiece model: an epoch is 14 batches and a step takes milliseconds, so runs of a few
dozen steps cross epochs, prune, rewind and validate in well under a second.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import Callback

from lightning_slt import TranslationDataModule, TranslationModule
from lightning_slt.checkpointing import AtomicCheckpointIO

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY_MODEL: dict[str, Any] = dict(
    d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, max_positions=64, dropout=0.1,
    lr=3e-3, warmup_steps=4, val_beam_size=1, beam_size=1, max_len_a=1.0, max_len_b=3,
)
TINY_DATA: dict[str, Any] = dict(
    corpus="multi30k", src_lang="en", tgt_lang="de", vocab_size=200, train_subset=96, valid_subset=8,
    test_subset=8, max_tokens=160, max_len=40, max_positions=64, eval_max_tokens=512,
)


def make_data(root: str | Path, cache_dir: str | Path, **overrides: Any) -> TranslationDataModule:
    return TranslationDataModule(**{**TINY_DATA, "data_root": str(root), "cache_dir": str(cache_dir), **overrides})


def make_module(data: TranslationDataModule, seed: int = 0, **overrides: Any) -> TranslationModule:
    pl.seed_everything(seed, verbose=False)
    return TranslationModule(vocab_size=data.vocab_size, **{**TINY_MODEL, **overrides})


def make_trainer(root: str | Path, **overrides: Any) -> pl.Trainer:
    """A quiet CPU trainer writing under ``root`` with the project's atomic checkpoint IO."""
    options: dict[str, Any] = dict(
        default_root_dir=str(root), accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
    )
    return pl.Trainer(**{**options, **overrides})


def cli_config(root: Path, data_root: str | Path, cache_dir: str | Path, **trainer: Any) -> Path:
    """A complete ``lightning-slt fit``/``test`` YAML for the tiny run, writing only under ``root``."""
    data = {k: v for k, v in TINY_DATA.items() if k != "max_positions"}  # linked from model.max_positions
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 4, "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(root / "run"), **trainer,
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root / "run" / "logs"), "name": "tiny"}},
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(root / "run" / "ckpt"), "save_last": True}}],
        },
        "model": dict(TINY_MODEL),
        "data": {**data, "data_root": str(data_root), "cache_dir": str(cache_dir)},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def file_states(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``roots`` (or the files themselves): path -> (size, mtime_ns, sha256).

    Equal before and after a failed command means nothing was written, changed or deleted.
    Directories are not listed: Lightning loggers create their (empty) version folder before
    any setup hook can refuse the run.
    """
    states = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            states[str(path)] = (len(data), path.stat().st_mtime_ns, hashlib.sha256(data).hexdigest())
    return states


class StepCounter(Callback):
    """Counts optimizer steps, so a test can say "no training step happened"."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.steps += 1
