"""Both Lightning namespaces: `pytorch_lightning` and `lightning.pytorch`, each in its own process
(a process uses one; see lightning_slt/_lightning.py), from Python and from its LightningCLI."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# Each test runs Lightning in fresh interpreters, one per namespace.
pytestmark = pytest.mark.slow

pytest.importorskip("lightning", reason="the dev extras install `lightning` for this test")


@pytest.mark.parametrize("namespace", ["pytorch_lightning", "lightning.pytorch"])
def test_fit_resume_and_lightning_cli_under_each_namespace(namespace, data_root, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SLT_NAMESPACE"}
    done = subprocess.run([sys.executable, "-m", "tests.namespaces._run", namespace, str(tmp_path), str(data_root)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["chosen"] == namespace  # picked from what the process imported first
    assert result["module_base"] == namespace.split(".")[0]
    assert result["python_steps"] == [4, 6]  # fit, then resumed from its checkpoint
    assert result["python_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert result["io"] == ["AtomicCheckpointIO"] * 3  # the plugin accepted by both Trainers
    assert result["cli_steps"] == 3
    assert result["cli_sparsity"] == pytest.approx(0.7, abs=1e-3)  # ConvergedMask by class_path
    assert result["cli_checkpoint_masks"] > 0


def test_the_namespace_can_be_forced_and_a_wrong_name_is_refused(tmp_path) -> None:
    code = "from lightning_slt._lightning import NAMESPACE; print(NAMESPACE)"
    env = {**os.environ, "LIGHTNING_SLT_NAMESPACE": "lightning.pytorch"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "lightning.pytorch"
    env["LIGHTNING_SLT_NAMESPACE"] = "lightning"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "LIGHTNING_SLT_NAMESPACE='lightning' is not a Lightning namespace; use one of pytorch_lightning, " \
           "lightning.pytorch" in done.stderr
