"""Shared fixtures. Real corpora come from LIGHTNING_SLT_DATA (the Makefile points it at
../shared/data); tests never download anything."""

import ast
import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from lightning_slt._runtime import configure_cpu

REPO_ROOT = Path(__file__).resolve().parents[1]

configure_cpu()
# Tests run tiny models: one thread is fastest, and it avoids OpenMP spin-waiting when other
# processes share the cores (measured: a 10-step tiny experiment run took 58 s with 2 threads on
# a loaded 2-core machine, 4 s with 1).
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the subprocesses some tests start
# The Makefile exports LIGHTNING_SLT_DATA; a bare `pytest` in a checkout finds ../shared/data too.
if not os.environ.get("LIGHTNING_SLT_DATA") and (REPO_ROOT.parent / "shared" / "data").is_dir():
    os.environ["LIGHTNING_SLT_DATA"] = str(REPO_ROOT.parent / "shared" / "data")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding the real corpora (multi30k/, wmt14-ende/, ...)."""
    env = os.environ.get("LIGHTNING_SLT_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not (root / "multi30k").is_dir():
        pytest.fail(f"real corpora not found under {root}: set LIGHTNING_SLT_DATA to the data root")
    return root


@pytest.fixture
def tiny_config(tmp_path, data_root):
    """A complete fit config for a tiny model on 256 Multi30k pairs, with a ModelCheckpoint."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0, "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp_path),
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                       "init_args": {"save_dir": str(tmp_path / "logs"), "name": "tiny"}},
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True}}],
        },
        "model": {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64,
                  "max_positions": 128, "warmup_steps": 2, "beam_size": 1, "max_len_b": 3},
        "data": {"data_root": str(data_root), "cache_dir": str(tmp_path / "spm"), "vocab_size": 300,
                 "train_subset": 256, "valid_subset": 16, "test_subset": 16, "max_tokens": 512, "max_len": 64,
                 "eval_max_tokens": 1024},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ----------------------------------------------------------------------------- time per test file
# The team guide gives each test file a time budget; a module docstring may state it ("Budget: < 10 s",
# "Budget: ~40 s", "Budget: ~3 min"). The session ends with each file's total (setup + call + teardown)
# against its budget, slowest first: a report, never a failure.

_FILE_SECONDS: dict[str, float] = {}
_BUDGET = re.compile(r"Budget:\s*[<~≈]?\s*(\d+(?:\.\d+)?)\s*(s|min)\b")
SLOWEST_FILES = 15


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def _budget_s(path: Path) -> float | None:
    try:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, ValueError):
        return None
    found = _BUDGET.search(docstring)
    return None if found is None else float(found.group(1)) * (60 if found.group(2) == "min" else 1)


@pytest.hookimpl(tryfirst=True)  # before the reliability suite's closing line, which stays last
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _FILE_SECONDS:
        return
    ranked = sorted(_FILE_SECONDS.items(), key=lambda item: -item[1])
    terminalreporter.write_sep("=", f"time per test file (setup + call + teardown): slowest "
                                    f"{min(SLOWEST_FILES, len(ranked))} of {len(ranked)} files, "
                                    f"{sum(_FILE_SECONDS.values()):.1f} s in all")
    for path, seconds in ranked[:SLOWEST_FILES]:
        budget = _budget_s(config.rootpath / path)
        note = "" if budget is None else f"  budget {budget:g} s" + ("  OVER" if seconds > budget else "")
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}{note}")
