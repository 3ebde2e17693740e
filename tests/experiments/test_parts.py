"""An experiment in parts, per-method targets, dense-only seeds and MP trained for an SLT
lineage's steps: as plans and configs (no training). Budget: < 5 s."""

import pytest

from lightning_slt.experiments import ExperimentConfig, Schedule, build_runs
from lightning_slt.experiments.methods import run_callbacks


def selected_parts(config):
    """What ``lightning-slt experiment`` runs: the chosen part, every part in order, or the config itself."""
    if not config.parts:
        return [config]
    return [config.for_part(name) for name in ([config.part] if config.part else config.parts)]

CHAIN = [0.5, 0.8, 0.9, 0.95]


def _config(**kwargs) -> ExperimentConfig:
    return ExperimentConfig(**{"base": ["b.yaml"], "output_dir": "out/repro", "targets": CHAIN, **kwargs})


def _runs(config: ExperimentConfig, max_steps: int = 800) -> tuple[Schedule, dict]:
    schedule = Schedule.resolve(config, max_steps)
    return schedule, {run.name: run for run in build_runs(config, schedule)}


def test_controls_at_their_own_targets_stand_beside_the_slt_round_of_that_target():
    config = _config(methods=["slt", "random_mask", "random_reinit", "clt", "random_sign"],
                     method_targets={"random_mask": [0.5, 0.9], "random_reinit": [0.5, 0.9], "random_sign": [0.5, 0.9]})
    _, runs = _runs(config)
    controls = sorted(name for name, run in runs.items() if run.kind.startswith("random"))
    assert controls == [
        "dense/clt_0.50/clt_0.80/random_sign_0.90", "dense/random_mask_0.50", "dense/random_reinit_0.50",
        "dense/random_sign_0.50", "dense/slt_0.50/slt_0.80/random_mask_0.90", "dense/slt_0.50/slt_0.80/random_reinit_0.90",
    ]
    # beside dense/slt_0.50/slt_0.80/slt_0.90: the same parent, so the same mask source
    assert runs["dense/slt_0.50/slt_0.80/random_reinit_0.90"].parent == runs["dense/slt_0.50/slt_0.80/slt_0.90"].parent
    assert runs["dense/slt_0.50/slt_0.80/random_mask_0.90"].weights_from == "dense"  # θk non-zero everywhere
    assert len(runs) == 1 + 4 + 4 + 6  # dense, the SLT and CLT chains, six controls: nothing else


def test_method_targets_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match=r"random_mask's targets \[0.5, 0.85\]: \[0.85\] are not rounds of the "
                                         r"slt chain \[0.5, 0.8, 0.9, 0.95\]"):
        _config(methods=["slt", "random_mask"], method_targets={"random_mask": [0.5, 0.85]})
    # a control on the experiment's targets, beside an SLT chain given fewer: refused, not run at two of four
    with pytest.raises(ValueError, match=r"random_mask's targets \[0.5, 0.8, 0.9, 0.95\]: \[0.8, 0.95\] are not rounds"):
        _config(methods=["slt", "random_mask"], method_targets={"slt": [0.5, 0.9]})
    with pytest.raises(ValueError, match="method_targets names 'lt', which is not among methods"):
        _config(methods=["slt"], method_targets={"lt": [0.5]})
    with pytest.raises(ValueError, match=r"method_targets\[mp\] must be strictly increasing"):
        _config(methods=["mp"], method_targets={"mp": [0.9, 0.5]})
    with pytest.raises(ValueError, match=r"method_targets\[mp\]\[0\]"):
        _config(methods=["mp"], method_targets={"mp": [1.0]})


def test_mp_for_the_slt_lineages_steps_trains_four_runs_long_with_its_ramp_stretched():
    config = _config(methods=["slt", "mp", "mp_lineage"], method_targets={"mp_lineage": [0.9]})
    schedule, runs = _runs(config)
    long = runs["mp_0.90_4x"]  # dense + SLT 50, 80, 90: four runs of 800 steps
    assert (long.kind, long.sparsity, long.max_steps, long.methods) == ("mp", 0.9, 3200, ["mp_lineage"])
    assert long.best_after_step == 4 * schedule.mp_end_step == 2560
    assert runs["mp_0.90"].max_steps is None and runs["mp_0.90"].methods == ["mp"]  # MP of one run stays
    ckpt = {name: f"{name}/last.ckpt" for name in runs}
    mp = [c.to_config() for c in run_callbacks(long, ckpt, schedule, 0)][0]["init_args"]
    assert (mp["end_step"], mp["frequency"], mp["final_sparsity"]) == (2560, 64, 0.9)
    one = [c.to_config() for c in run_callbacks(runs["mp_0.90"], ckpt, schedule, 0)][0]["init_args"]
    assert (one["end_step"], one["frequency"]) == (640, 16)
    with pytest.raises(ValueError, match=r"mp_lineage targets \[0.85\] are not rounds of the SLT chain"):
        _config(methods=["slt", "mp_lineage"], method_targets={"mp_lineage": [0.85]})


def test_a_lineage_length_run_is_trained_for_its_own_max_steps():
    from lightning_slt.experiments.runner import run_config

    config = _config(methods=["mp_lineage"], method_targets={"mp_lineage": [0.8]})
    schedule, runs = _runs(config)
    base = {"trainer": {"max_steps": 800, "callbacks": []}, "model": {}, "seed_everything": 0}
    ckpt = {name: f"{name}/last.ckpt" for name in runs}
    assert run_config(config, base, schedule, runs["mp_0.80_3x"], 0, ckpt).to_config()["trainer"]["max_steps"] == 2400
    assert run_config(config, base, schedule, runs["dense"], 0, ckpt).to_config()["trainer"]["max_steps"] == 800


def test_parts_are_experiments_of_their_own_in_subfolders_each_with_the_dense_run():
    config = _config(parts={"a_slt_mp": {"methods": ["slt", "mp"]},
                            "b_seeds": {"methods": ["slt"], "dense_seeds": [1, 2]}})
    assert config.methods == []
    first, second = selected_parts(config)
    assert (first.output_dir, first.name, first.methods, first.dense_seeds) == ("out/repro/a_slt_mp", "repro-a_slt_mp",
                                                                                ["slt", "mp"], [])
    assert (second.output_dir, second.dense_seeds, second.seeds) == ("out/repro/b_seeds", [1, 2], [0])
    assert [p.output_dir for p in selected_parts(_config(parts=config.parts, part="b_seeds"))] == ["out/repro/b_seeds"]
    _, runs = _runs(first)
    assert "dense" in runs and runs["dense"].methods == ["slt", "mp"]


def test_a_part_keeps_the_targets_of_the_chains_its_controls_stand_beside():
    """Part b runs only a control and mp_lineage; the SLT chain they build on is given two rounds
    (method_targets: {slt: [0.5, 0.9]}), so the control stands beside SLT 90 % after 50 % and the
    lineage is three runs long, in part b as in part a."""
    config = _config(method_targets={"slt": [0.5, 0.9], "random_mask": [0.9], "mp_lineage": [0.9]},
                     parts={"a": {"methods": ["slt"]}, "b": {"methods": ["random_mask", "mp_lineage"]}})
    _, runs = _runs(config.for_part("b"))
    assert sorted(runs) == ["dense", "dense/slt_0.50", "dense/slt_0.50/random_mask_0.90", "mp_0.90_3x"]
    _, runs_a = _runs(config.for_part("a"))
    assert sorted(runs_a) == ["dense", "dense/slt_0.50", "dense/slt_0.50/slt_0.90"]
    with pytest.raises(ValueError, match=r"method_targets names \['clt'\], which no part runs"):
        _config(method_targets={"clt": [0.5]}, parts={"a": {"methods": ["slt"]}})


def test_every_part_folder_is_checked_before_the_chosen_part_trains(tmp_path, data_root):
    """Part p1 finished under 6 steps; the config now says 8: running p2 alone is refused before
    it trains, since p1's runs and p2's would be judged together. A folder holding a single
    experiment is refused as the home of parts."""
    from pathlib import Path

    from lightning_slt.experiments import run_experiment

    base = str(Path(__file__).parent / "tiny_base.yaml")
    parts = {"p1": {"methods": ["mp"]}, "p2": {"methods": ["slt"]}}
    short = ["--trainer.max_steps=4", "--trainer.val_check_interval=2"]
    run_experiment(ExperimentConfig(base=[base], output_dir=str(tmp_path / "x"), targets=[0.5], base_args=short,
                                    parts=parts, part="p1"))
    changed = ExperimentConfig(base=[base], output_dir=str(tmp_path / "x"), targets=[0.5], parts=parts, part="p2",
                               base_args=["--trainer.max_steps=8", "--trainer.val_check_interval=2"])
    with pytest.raises(ValueError, match=r"x/p1 holds a different experiment \(.*max_steps"):
        run_experiment(changed)
    assert not (tmp_path / "x" / "p2").exists()
    single = ExperimentConfig(base=[base], output_dir=str(tmp_path / "x" / "p1"), targets=[0.5], base_args=short,
                              parts={"q": {"methods": ["mp"]}})
    with pytest.raises(ValueError, match="holds a single experiment"):
        run_experiment(single)


def test_bad_parts_are_refused_before_any_part_runs():
    with pytest.raises(ValueError, match="part='c' is not a part of this experiment; its parts: a, b"):
        _config(parts={"a": {"methods": ["slt"]}, "b": {"methods": ["mp"]}}, part="c")
    with pytest.raises(ValueError, match=r"part 'b': unknown method\(s\) \['mpp'\]"):
        _config(parts={"a": {"methods": ["slt"]}, "b": {"methods": ["mpp"]}})
    with pytest.raises(ValueError, match=r"methods \['lt'\] are in no part"):
        _config(methods=["lt"], parts={"a": {"methods": ["slt"]}})
    with pytest.raises(ValueError, match="part=.a. but this experiment has no parts"):
        _config(methods=["slt"], part="a")
    with pytest.raises(ValueError, match="dense_seeds must be distinct integers not in seeds"):
        _config(methods=["slt"], dense_seeds=[0, 1])


def test_an_experiment_in_parts_trains_each_part_in_its_folder_and_reports_them_jointly(tmp_path, data_root):
    """Two parts on the tiny model: each trains its own dense run (seed 0); the second also the dense
    run of seed 1 only; the joint report takes each column from its part. Budget: ~30 s."""
    import csv
    import json
    from pathlib import Path

    from lightning_slt.experiments import run_experiment
    from lightning_slt.experiments.report import part_folders

    base = str(Path(__file__).parent / "tiny_base.yaml")
    config = ExperimentConfig(base=[base], output_dir=str(tmp_path / "repro"), targets=[0.5],
                              base_args=["--trainer.max_steps=6", "--trainer.val_check_interval=3"],
                              parts={"p1": {"methods": ["slt"]}, "p2": {"methods": ["mp"], "dense_seeds": [1]}})
    assert run_experiment(ExperimentConfig(**{**config.to_dict(), "part": "p1"})) == tmp_path / "repro" / "p1"
    assert not (tmp_path / "repro" / "results.md").exists()  # p2 not run yet: no joint table
    assert run_experiment(config) == tmp_path / "repro"  # p1 is finished and skipped; p2 runs
    assert json.loads((tmp_path / "repro" / "parts.json").read_text())["parts"] == ["p1", "p2"]
    assert part_folders(tmp_path / "repro") == [tmp_path / "repro" / "p1", tmp_path / "repro" / "p2"]
    found = sorted(str(p.relative_to(tmp_path / "repro")) for p in (tmp_path / "repro").glob("**/metrics.json"))
    assert found == ["p1/seed0/dense/metrics.json", "p1/seed0/dense/slt_0.50/metrics.json",
                     "p2/seed0/dense/metrics.json", "p2/seed0/mp_0.50/metrics.json", "p2/seed1/dense/metrics.json"]
    metrics = json.loads((tmp_path / "repro/p1/seed0/dense/slt_0.50/metrics.json").read_text())
    assert set(metrics["layer_sparsity"]) == set(torch_masks(tmp_path / "repro/p1/seed0/dense/slt_0.50/mask.pt"))
    assert sum(metrics["layer_sparsity"].values()) > 0 and metrics["machine"]["precision"] == "32-true"
    with open(tmp_path / "repro" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["part"], r["method"], r["sparsity"], r["seed"]) for r in rows} == {
        ("p1", "slt", "0.0", "0"), ("p1", "slt", "0.5", "0"), ("p2", "mp", "0.0", "0"), ("p2", "mp", "0.0", "1"),
        ("p2", "mp", "0.5", "0")}
    table = (tmp_path / "repro" / "results.md").read_text()
    assert "each column from the part that runs it" in table and "SLT: p1, MP: p2" in table


def torch_masks(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
