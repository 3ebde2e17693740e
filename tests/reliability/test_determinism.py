"""Determinism: with a fixed seed, masks (random ones included), tickets and the experiment chain
are identical across runs, across DDP ranks, and whatever the number of processes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_slt import (
    ConvergedMask,
    GradualMagnitudePruning,
    RandomMask,
    RandomReinit,
    SignOnlyReinit,
    WeightRewind,
)
from lightning_slt.callbacks import session_of
from lightning_slt.experiments import ExperimentConfig, build_runs, plan
from lightning_slt.experiments.config import METHOD_NAMES, Schedule
from lightning_slt.experiments.methods import run_callbacks
from lightning_slt.experiments.runner import run_config

from .tiny import REPO_ROOT, make_data, make_module, make_trainer

TINY_EXPERIMENT_BASE = str(REPO_ROOT / "tests" / "experiments" / "tiny_base.yaml")


def chain_digest(output_dir: str = "/exp") -> str:
    """sha256 of every run the nine-method chain would train and of each run's pruning callbacks."""
    config = ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=list(METHOD_NAMES), output_dir=output_dir,
                              targets=[0.5, 0.6, 0.8], seeds=[0, 1])
    schedule = Schedule.resolve(config, 10)
    runs = build_runs(config, schedule)
    last = {run.name: f"{output_dir}/{run.name}/last.ckpt" for run in runs}
    described = [(dataclasses.asdict(run), [[c.to_config() for c in run_callbacks(run, last, schedule, seed)]
                                            for seed in config.seeds]) for run in runs]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class Recorder(pl.Callback):
    """Saves, per rank, the assembled ticket (masks and weights before the first step), the masks
    at the end, and the chain digest this process computes, to ``<out_dir>/rank<r>.pt``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.ticket: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.ticket is None:
            self.ticket = {"masks": session_of(trainer).masks.state_dict(),
                           "weights": {n: p.detach().clone() for n, p in pl_module.named_parameters()}}

    def on_train_end(self, trainer, pl_module):
        record = {**self.ticket, "final_masks": session_of(trainer).masks.state_dict(), "chain": chain_digest(),
                  "world_size": trainer.world_size}
        torch.save(record, Path(self.out_dir) / f"rank{trainer.global_rank}.pt")


def _fit(data, out: Path, callbacks: list, devices: int = 1, seed: int = 0, steps: int = 6) -> list[dict]:
    """Fit on 1 process or ``devices`` ddp_spawn processes; returns each rank's record."""
    out.mkdir(parents=True)
    spawn = {"devices": devices, "strategy": "ddp_spawn"} if devices > 1 else {}
    make_trainer(out, max_steps=steps, callbacks=[*callbacks, Recorder(str(out))], **spawn).fit(
        make_module(data, seed=seed), datamodule=data)
    records = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(devices)]
    assert [r["world_size"] for r in records] == [devices] * devices
    return records


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def converged(tmp_path_factory, data_root, spm_cache) -> Path:
    """A short dense run that recorded θ0: the source of ConvergedMask and WeightRewind below."""
    root = tmp_path_factory.mktemp("converged")
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(root, max_steps=6, callbacks=[WeightRewind(step=0)])
    trainer.fit(make_module(data, seed=1), datamodule=data)
    trainer.save_checkpoint(root / "last.ckpt")
    return root / "last.ckpt"


def _random_ticket() -> list:
    return [RandomMask(0.4, seed=7), RandomReinit(seed=3), GradualMagnitudePruning(0.7, initial_sparsity=0.4, end_step=4,
                                                                                  frequency=2)]


def _converged_ticket(source: Path) -> list:
    return [ConvergedMask(str(source), sparsity=0.6), WeightRewind(step=0, source=str(source)),
            SignOnlyReinit(sign="random", seed=5)]


def test_same_seed_same_masks_weights_and_chain_across_runs(make_data, converged, tmp_path):
    first = _fit(make_data(), tmp_path / "a", _random_ticket())[0]
    again = _fit(make_data(), tmp_path / "b", _random_ticket())[0]
    for part in ("masks", "weights", "final_masks"):
        assert _same(first[part], again[part]), part
    other_seed = _fit(make_data(), tmp_path / "c", [RandomMask(0.4, seed=8)])[0]
    assert not _same(first["masks"], other_seed["masks"])  # the seed, not luck, decides
    converged_a = _fit(make_data(), tmp_path / "d", _converged_ticket(converged))[0]
    converged_b = _fit(make_data(), tmp_path / "e", _converged_ticket(converged), seed=99)[0]  # other init: unused
    for part in ("masks", "weights", "final_masks"):
        assert _same(converged_a[part], converged_b[part]), part
    assert first["chain"] == again["chain"] == chain_digest()


def test_the_chain_and_its_run_configs_are_the_same_every_time(tmp_path):
    config = ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=list(METHOD_NAMES), output_dir=str(tmp_path / "x"),
                              targets=[0.5, 0.6, 0.8], seeds=[0, 1])
    base, schedule, runs = plan(config)
    base2, schedule2, runs2 = plan(config)
    assert (base, schedule, runs) == (base2, schedule2, runs2)
    last = {run.name: f"{run.name}/last.ckpt" for run in runs}
    for seed in config.seeds:
        for run, run2 in zip(runs, runs2):
            assert run_config(config, base, schedule, run, seed, last).to_config() == run_config(config, base2, schedule2, run2,
                                                                                      seed, last).to_config()
    assert len(runs) == 24 and not tmp_path.joinpath("x").exists()  # planning writes nothing


@pytest.mark.slow
@pytest.mark.parametrize("ticket", ["random", "converged"])
def test_masks_are_identical_whatever_the_number_of_processes(ticket, make_data, converged, tmp_path):
    callbacks = _random_ticket if ticket == "random" else (lambda: _converged_ticket(converged))
    single = _fit(make_data(), tmp_path / "one", callbacks())[0]
    rank0, rank1 = _fit(make_data(), tmp_path / "two", callbacks(), devices=2)
    for part in ("masks", "weights"):  # the assembled ticket: same on 1 process and on both ranks
        assert _same(single[part], rank0[part]) and _same(rank0[part], rank1[part]), part
    assert _same(rank0["final_masks"], rank1["final_masks"])  # after training and pruning on both ranks
    assert sum(int((~m).sum()) for m in single["masks"].values()) > 0
    assert single["chain"] == rank0["chain"] == rank1["chain"] == chain_digest()
