"""Shared fixtures. Real corpora come from LIGHTNING_SLT_DATA (the Makefile points it at
../shared/data); tests never download anything."""

import os
from pathlib import Path

import pytest
import torch

from lightning_slt._runtime import configure_cpu

REPO_ROOT = Path(__file__).resolve().parents[1]

configure_cpu()
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding the real corpora (multi30k/, wmt14-ende/, ...)."""
    env = os.environ.get("LIGHTNING_SLT_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not (root / "multi30k").is_dir():
        pytest.fail(f"real corpora not found under {root}: set LIGHTNING_SLT_DATA to the data root")
    return root
