"""Process-wide settings of lightning_slt._runtime, each checked in a fresh interpreter."""

import subprocess
import sys

import pytest

# Each test starts a fresh interpreter (1.5 to 3 s each).
pytestmark = pytest.mark.slow


def _run(code: str, **env: str) -> str:
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_gloo_process_group_is_destroyed_at_exit_while_the_interpreter_is_alive(tmp_path):
    out = _run(f"""
import atexit
import torch.distributed as dist
from lightning_slt._runtime import destroy_gloo_group_at_exit
dist.init_process_group("gloo", init_method="file://{tmp_path / 'store'}", rank=0, world_size=1)
atexit.register(lambda: print("initialized after our handler:", dist.is_initialized()))  # runs last (LIFO)
destroy_gloo_group_at_exit()
destroy_gloo_group_at_exit()  # registers once
import lightning_slt._runtime as runtime
print("registered:", runtime._cleanup_registered)
""")
    assert out.splitlines() == ["registered: True", "initialized after our handler: False"]


def test_without_a_process_group_nothing_is_registered():
    out = _run("""
import lightning_slt._runtime as runtime
runtime.destroy_gloo_group_at_exit()
print(runtime._cleanup_registered)
""")
    assert out.strip() == "False"


def test_freed_memory_is_kept_only_when_asked_and_not_opted_out():
    code = """
import lightning_slt._runtime as runtime
runtime.configure_cpu()
print(runtime._heap_reuse_applied)
runtime.configure_cpu(reuse_freed_memory=True)
print(runtime._heap_reuse_applied)
"""
    assert _run(code).split() == ["False", "True"]  # glibc on these machines
    assert _run(code, LIGHTNING_SLT_MALLOC="system").split() == ["False", "False"]
