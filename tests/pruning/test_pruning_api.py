"""The pruning package as a whole: pure torch, importable without Lightning."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_pruning_core_does_not_import_lightning():
    code = "import sys, lightning_slt.pruning; sys.exit(any(m.startswith(('pytorch_lightning','lightning')) for m in sys.modules if m != 'lightning_slt' and not m.startswith('lightning_slt')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
