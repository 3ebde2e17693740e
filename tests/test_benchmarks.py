"""The training-throughput benchmark's own measurements (benchmarks/train_throughput.py), on tiny inputs."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def train_throughput():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARKS / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_throughput"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["train_throughput"]


def _optimizer(weight):
    return torch.optim.SGD([weight], lr=0.0)


def test_a_step_of_only_gemms_has_a_gemm_share_near_one(train_throughput):
    weight = torch.randn(512, 512, requires_grad=True)
    batch = {"x": torch.randn(1024, 512)}

    def loss(batch):
        return (batch["x"] @ weight).mm(weight).sum()

    share = train_throughput.gemm_share(loss, _optimizer(weight), [batch] * 2, bf16=False)
    assert 0.8 < share <= 1.0  # forward and backward are four 512-wide GEMMs; sum/ones are the rest


def test_a_step_without_gemms_has_a_gemm_share_of_zero(train_throughput):
    weight = torch.randn(1024, 512, requires_grad=True)
    batch = {"x": torch.randn(1024, 512)}

    def loss(batch):
        return torch.log_softmax(batch["x"] * weight, dim=-1).exp().sum()

    assert train_throughput.gemm_share(loss, _optimizer(weight), [batch], bf16=False) == 0.0


def test_a_step_of_gemms_and_elementwise_work_has_a_share_strictly_between(train_throughput):
    """GEMM and elementwise work of the same order: both count, so the share is neither 0 nor 1."""
    weight = torch.randn(256, 256, requires_grad=True)
    batch = {"x": torch.randn(2048, 256)}

    def loss(batch):
        hidden = batch["x"] @ weight
        for _ in range(20):  # elementwise work of the same order as the GEMMs
            hidden = torch.tanh(hidden)
        return hidden.sum()

    share = train_throughput.gemm_share(loss, _optimizer(weight), [batch] * 2, bf16=False)
    assert 0.0 < share < 1.0


def test_gpu_check_says_it_skipped_without_cuda_and_runs_with_it(tmp_path):
    """benchmarks/gpu_check.py is the prepared GPU script: here (no CUDA) one line saying so; on a
    machine with CUDA every check it prints must hold."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not torch.cuda.is_available():
        assert lines == [{"benchmark": "gpu_check", "cuda": False, "skipped": "no CUDA device here"}]
        return
    assert {line["engine"] for line in lines} >= {"one_gpu"}
    for line in lines:
        assert line["slt_masks_exact_and_one_process"] and line["gmp_exact_80_percent"], line
        assert line["pruned_entries_zero"] and line["resumed_masks_equal_uninterrupted"], line
