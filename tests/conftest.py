"""Shared fixtures. Real corpora come from LIGHTNING_SLT_DATA (the Makefile points it at
../shared/data); tests never download anything."""

import os
from pathlib import Path

import pytest
import torch

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
