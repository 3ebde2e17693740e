"""Chains as data: which runs each method needs, their lineage and callbacks (no training)."""

import pytest

from lightning_slt.experiments import ExperimentConfig, Schedule, build_runs
from lightning_slt.experiments.methods import run_callbacks

from ._plans import method_rows


def _runs(methods, targets=(0.5, 0.6, 0.8), max_steps=100, **kwargs):
    config = ExperimentConfig(base=["b.yaml"], methods=list(methods), output_dir="out", targets=list(targets), **kwargs)
    schedule = Schedule.resolve(config, max_steps)
    return config, schedule, {run.name: run for run in build_runs(config, schedule)}


def _callbacks(run, ckpt, schedule, seed):
    """The run's callbacks as its config.yaml writes them (``class_path``/``init_args``)."""
    return [callback.to_config() for callback in run_callbacks(run, ckpt, schedule, seed)]


def test_paper_defaults_scale_with_max_steps():
    config, schedule, _ = _runs(["slt"], max_steps=500_000)
    assert (schedule.rewind_step, schedule.mp_end_step, schedule.mp_frequency) == (25_000, 400_000, 10_000)
    assert ExperimentConfig(base=["b"], methods=["slt"], output_dir="o").targets == [
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]


def test_slt_rewinds_to_the_previous_round_and_lt_to_dense_theta0():
    _, schedule, runs = _runs(["slt", "lt"])
    ckpt = {name: f"{name}/last.ckpt" for name in runs}
    slt = _callbacks(runs["dense/slt_0.50/slt_0.60"], ckpt, schedule, 0)
    assert slt[0]["init_args"] == {"source": "dense/slt_0.50/last.ckpt", "sparsity": 0.6}
    assert slt[1]["init_args"] == {"step": 5, "source": "dense/slt_0.50/last.ckpt"}
    lt = _callbacks(runs["dense/lt_0.50/lt_0.60"], ckpt, schedule, 0)
    assert lt[0]["init_args"]["source"] == "dense/lt_0.50/last.ckpt"
    assert lt[1]["init_args"] == {"step": 0, "source": "dense/last.ckpt"}
    dense = _callbacks(runs["dense"], ckpt, schedule, 0)
    assert [c["init_args"]["step"] for c in dense] == [0, 5]


def test_shared_runs_appear_once_across_methods():
    _, _, runs = _runs(["mp", "slt", "slt_mp", "mp_slt"])
    assert sum(name == "dense" for name in runs) == 1
    assert runs["dense/slt_0.50"].methods == ["slt", "slt_mp"]  # SLT's first target is 50 %: one run
    assert runs["mp_0.60"].methods == ["mp", "mp_slt"]
    _, _, other = _runs(["slt", "slt_mp"], targets=(0.3, 0.5, 0.8))
    assert "dense/slt_0.50" in other and "dense/slt_0.30/slt_0.50" in other  # different parents: two runs


def test_slt_mp_and_mp_slt_structure():
    config, schedule, runs = _runs(["slt_mp", "mp_slt"])
    mp = runs["dense/slt_0.50/slt_0.60/mp_0.80"]
    assert (mp.kind, mp.initial_sparsity, mp.best_after_step) == ("mp", 0.6, 80)
    cbs = _callbacks(mp, {n: n for n in runs}, schedule, 0)
    assert [c["class_path"].rsplit(".", 1)[1] for c in cbs] == ["ConvergedMask", "WeightRewind", "GradualMagnitudePruning"]
    assert cbs[2]["init_args"]["initial_sparsity"] == 0.6
    assert runs["mp_0.60/slt_0.80"].parent == "mp_0.60"
    rows = {s: r.name for s, r in method_rows(list(runs.values()), "slt_mp").items()}
    assert rows == {0.0: "dense", 0.5: "dense/slt_0.50", 0.6: "dense/slt_0.50/slt_0.60", 0.8: "dense/slt_0.50/slt_0.60/mp_0.80"}


def test_controls_branch_off_the_slt_or_clt_chain():
    _, schedule, runs = _runs(["random_mask", "random_reinit", "random_sign"])
    assert "dense/slt_0.50/random_mask_0.60" in runs and "dense/clt_0.50/random_sign_0.60" in runs
    rows = method_rows(list(runs.values()), "random_mask")
    assert [r.kind for r in rows.values()] == ["dense", "random_mask", "random_mask", "random_mask"]
    names = {c["class_path"].rsplit(".", 1)[1] for c in _callbacks(runs["dense/random_reinit_0.50"], {n: n for n in runs}, schedule, 3)}
    assert names == {"ConvergedMask", "WeightRewind", "RandomReinit"}
    # the SLT (CLT) rounds a control trains are that method's results too, so a part that runs the
    # control without SLT judges it beside its own SLT round (p4 of the reproduction)
    assert {s: r.name for s, r in method_rows(list(runs.values()), "slt").items()} == {
        0.0: "dense", 0.5: "dense/slt_0.50", 0.6: "dense/slt_0.50/slt_0.60"}  # the rounds below the last target
    assert runs["dense/slt_0.50"].methods == ["random_mask", "random_reinit"]  # trained for them, not for SLT
    assert [r.name for r in method_rows(list(runs.values()), "clt").values()] == ["dense", "dense/clt_0.50", "dense/clt_0.50/clt_0.60"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ["slt", "magic"]}, "unknown method"),
        ({"targets": [0.5, 0.4]}, "strictly increasing"),
        ({"targets": [0.5, 1.0]}, r"targets\[1\] must be a fraction in \[0, 1\)"),
        ({"targets": []}, "targets is empty"),
        ({"seeds": [1, 1]}, "distinct"),
    ],
)
def test_bad_experiment_configs(kwargs, message):
    base = {"base": ["b"], "methods": ["slt"], "output_dir": "o"}
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**{**base, **kwargs})


def test_rewind_step_beyond_the_run_is_refused():
    config = ExperimentConfig(base=["b"], methods=["slt"], output_dir="o", rewind_step=200)
    with pytest.raises(ValueError, match="rewind_step 200 is beyond the run's max_steps 100"):
        Schedule.resolve(config, 100)
