"""Runs side by side (``--parallel``): order by lineage, real overlap, a failure stopped, and the
same results as one after the other. Budget: < 90 s (spawned processes import torch)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from lightning_slt.experiments import ExperimentConfig, run_experiment
from lightning_slt.experiments.parallel import Job, train_side_by_side

HERE = Path(__file__).parent


def record(folder: str, name: str, wait_for: str | None = None, fail: bool = False) -> None:
    """A stand-in run: notes which runs had finished when it started, may wait until another has
    started (proof of overlap without timing anything), then marks itself done."""
    root = Path(folder)
    finished = sorted(p.stem for p in root.glob("*.done"))
    (root / f"{name}.threads").write_text(str(torch.get_num_threads()))
    (root / f"{name}.started").write_text(json.dumps(finished))
    if wait_for is not None:
        deadline = time.monotonic() + 60
        while not (root / f"{wait_for}.started").exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{wait_for} never ran beside {name}")
            time.sleep(0.05)
    if fail:
        raise RuntimeError(f"{name} fails on purpose")
    (root / f"{name}.done").write_text("")


def _job(tmp_path, name, needs=(), **kwargs):
    return Job((0, name), frozenset((0, need) for need in needs), tmp_path / f"{name}.log",
               (str(tmp_path), name, *kwargs.values()))


@pytest.mark.slow
def test_runs_wait_for_their_lineage_overlap_otherwise_and_share_the_cores(tmp_path, monkeypatch):
    """dense starts alone (every core: nothing can join it); slt and lt need dense and then run
    side by side (each waits until the other has started; half the cores each); slt2 needs slt."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    jobs = [_job(tmp_path, "dense"), _job(tmp_path, "slt", needs=["dense"], wait_for="lt"),
            _job(tmp_path, "lt", needs=["dense"], wait_for="slt"), _job(tmp_path, "slt2", needs=["dense", "slt"])]
    train_side_by_side(jobs, parallel=2, train=record)
    started = {name: json.loads((tmp_path / f"{name}.started").read_text()) for name in ("dense", "slt", "lt", "slt2")}
    assert started["dense"] == [] and started["slt"] == started["lt"] == ["dense"]  # side by side
    assert {"dense", "slt"} <= set(started["slt2"])
    cores = len(os.sched_getaffinity(0))
    threads = {name: int((tmp_path / f"{name}.threads").read_text()) for name in ("dense", "slt", "lt")}
    assert threads == {"dense": cores, "slt": max(1, cores // 2), "lt": max(1, cores // 2)}


@pytest.mark.slow
def test_a_failed_run_stops_what_builds_on_it_and_names_its_log(tmp_path):
    jobs = [_job(tmp_path, "dense", wait_for="mp", fail=True), _job(tmp_path, "mp", wait_for="dense"),
            _job(tmp_path, "slt", needs=["dense"])]
    with pytest.raises(RuntimeError, match=rf"1 run\(s\) failed \(seed0/dense: {tmp_path / 'dense.log'}: see the end "
                                           r"of each log\); 1 run\(s\) that build on them were not started"):
        train_side_by_side(jobs, parallel=2, train=record)
    assert (tmp_path / "mp.done").exists() and not (tmp_path / "slt.started").exists()
    assert "dense fails on purpose" in (tmp_path / "dense.log").read_text()


def test_parallel_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="--parallel must be >= 1"):
        run_experiment(ExperimentConfig(base=[str(HERE / "tiny_base.yaml")], methods=["slt"], targets=[0.5],
                                        output_dir=str(tmp_path / "exp")), parallel=0)


def _results(root: Path) -> dict:
    out = {}
    for metrics in sorted(root.glob("seed*/**/metrics.json")):
        figures = json.loads(metrics.read_text())
        masks = torch.load(metrics.parent / "checkpoints" / "last.ckpt", map_location="cpu",
                           weights_only=False).get("lightning_slt", {}).get("masks", {})
        out[str(metrics.parent.relative_to(root))] = (figures["test"]["bleu"], figures["valid"]["bleu"],
                                                      figures["sparsity"], {n: m.clone() for n, m in masks.items()})
    return out


@pytest.mark.slow
def test_side_by_side_gives_the_runs_one_after_the_other_gives(tmp_path, data_root, monkeypatch):
    """Two seeds of dense → SLT 50 % (two chains): trained two at a time with one thread each
    (OMP_NUM_THREADS=1),
    every run's figures and masks are those of the same runs trained in a row with one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the children's (OMP_NUM_THREADS below): bit-identical arithmetic
    try:
        def config(name):
            return ExperimentConfig(base=[str(HERE / "tiny_base.yaml")], methods=["slt"], targets=[0.5],
                                    seeds=[0, 1], output_dir=str(tmp_path / name))

        run_experiment(config("in_a_row"))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # else a run that starts alone takes both cores
    run_experiment(config("side_by_side"), parallel=2)
    in_a_row, side_by_side = _results(tmp_path / "in_a_row"), _results(tmp_path / "side_by_side")
    assert len(in_a_row) == 2 * 2 and in_a_row.keys() == side_by_side.keys()
    for run, (test, valid, sparsity, masks) in in_a_row.items():
        other = side_by_side[run]
        assert (test, valid, sparsity) == other[:3], run
        assert masks.keys() == other[3].keys() and all(torch.equal(masks[n], other[3][n]) for n in masks), run
    assert (tmp_path / "side_by_side" / "seed1" / "dense" / "slt_0.50" / "train.log").stat().st_size > 0
    child = json.loads((tmp_path / "side_by_side" / "seed1" / "dense" / "metrics.json").read_text())["machine"]
    assert child["threads"] == 1
    assert (tmp_path / "side_by_side" / "results.md").is_file()
