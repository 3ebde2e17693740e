"""Every shipped experiment config loads, type-checks and plans its chains without training; bad
per-method targets and bad parts are refused before anything runs."""

from pathlib import Path

import pytest

from lightning_slt.experiments import ExperimentConfig, load_config, plan
from lightning_slt.experiments.config import Schedule
from lightning_slt.experiments.runner import run_config

from ._plans import _config, _runs, selected_parts

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO_ROOT / "conf" / "experiments").glob("*.yaml"))


def test_there_is_one_config_per_method_and_the_paper_setup():
    names = {p.stem for p in CONFIGS}
    assert {"mp", "lt", "slt", "clt", "slt_mp", "mp_slt", "controls", "paper_wmt14_ende"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_experiment_config_plans(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    for config in selected_parts(load_config(path)):  # an experiment in parts: each part
        _check_plan(path, config)


def _check_plan(path: Path, config: ExperimentConfig) -> None:
    base, schedule, runs = plan(config)
    assert runs[0].name == "dense" and len(runs) > len(config.methods)
    assert 0 < schedule.rewind_step <= schedule.mp_end_step <= schedule.max_steps
    # the paper's proportions (warm-up 10k, k = 25k of 500k): θk after warm-up, within 10 % of the run
    assert schedule.warmup_steps <= schedule.rewind_step <= 0.1 * schedule.max_steps, schedule
    assert schedule.warnings() == []
    every_run = [run_config(config, base, schedule, run, 0, {r.name: "x.ckpt" for r in runs}).to_config() for run in runs]
    assert {cfg["model"]["warmup_steps"] for cfg in every_run} == {schedule.warmup_steps}
    timers = {sum(c["class_path"].endswith(".Timer") for c in cfg["trainer"]["callbacks"]) for cfg in every_run}
    assert timers == {1}  # Lightning's Timer keeps each run's training time over its sittings
    # the runs validate every val_check_interval steps across epochs (a Multi30k epoch is ~120
    # steps): the base config's explicit null must survive into every run's config
    assert base["trainer"]["check_val_every_n_epoch"] is None and base["trainer"]["max_time"] is None
    if path.stem == "paper_wmt14_ende":
        assert (schedule.max_steps, schedule.rewind_step, schedule.mp_end_step, schedule.mp_frequency,
                schedule.warmup_steps) == (500_000, 25_000, 400_000, 10_000, 10_000)
        assert base["model"]["optimizer"] == "adafactor" and base["model"]["d_model"] == 512
        assert len([r for r in runs if "slt" in r.methods]) == 13  # dense + 12 rounds to 98 %
    if path.stem == "reproduce_multi30k":  # every run of a part the same length, but the lineage-length MP
        assert (schedule.max_steps, schedule.warmup_steps, schedule.rewind_step) == (800, 16, 40)
        assert {r.max_steps for r in runs} <= {None, 3200}
    if path.stem == "reproduce_multi30k_converged":  # warmup-stable-decay at the measured T
        T = schedule.max_steps
        assert (base["model"]["lr_schedule"], base["model"]["cooldown_fraction"]) == ("linear_warmup", 0.2)
        assert (schedule.warmup_steps, schedule.rewind_step, schedule.mp_end_step) == (40, T // 20, 4 * T // 5)
        assert {r.max_steps for r in runs} <= {None, 4 * T}


def test_the_converged_protocol_trains_dense_mp_slt_and_lt_under_two_seeds_the_rest_under_one(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    seeds: dict[str, set[int]] = {}
    for part in selected_parts(load_config(REPO_ROOT / "conf/experiments/reproduce_multi30k_converged.yaml")):
        for method in ["dense", *part.methods]:
            seeds.setdefault(method, set()).update(part.seeds)
    assert {m for m, s in seeds.items() if s == {0, 1}} == {"dense", "mp", "slt", "lt"}
    assert all(s == {0} for m, s in seeds.items() if m not in ("dense", "mp", "slt", "lt"))


def test_wrong_type_in_an_experiment_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [conf/multi30k_cpu.yaml]\nmethods: [slt]\noutput_dir: x\nseeds: first\n")
    with pytest.raises(Exception, match="seeds"):
        load_config(bad)


def test_manifest_digest_is_that_of_the_base_without_nulls(monkeypatch):
    """Folders written when the base was dumped without its nulls keep resuming (same digest)."""
    import hashlib
    import warnings

    import yaml

    from lightning_slt._runtime import cpu_precision
    from lightning_slt.experiments.runner import _manifest
    from lightning_slt.launch import TranslationCLI

    monkeypatch.chdir(REPO_ROOT)
    config = load_config(REPO_ROOT / "conf" / "experiments" / "slt.yaml")
    base, schedule, _ = plan(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = TranslationCLI(args=["--config", "conf/multi30k_cpu.yaml", *config.base_args], run=False, parse_only=True)
    without_nulls = yaml.safe_load(cli.parser.dump(cli.config))  # jsonargparse's default: skip_none=True
    trainer = without_nulls["trainer"]  # the precision this CPU trains in, as the runner records it
    trainer["precision"] = cpu_precision(trainer["precision"], trainer["accelerator"])[0]
    expected = hashlib.sha256(yaml.safe_dump(without_nulls, sort_keys=True).encode()).hexdigest()
    assert _manifest(config, base, schedule)["base_config_sha256"] == expected


@pytest.mark.parametrize("max_steps, expected", [(3000, (60, 150, 2400, 60)), (20_000, (400, 1000, 16_000, 400)),
                                                 (500_000, (10_000, 25_000, 400_000, 10_000))])
def test_defaults_keep_the_papers_proportions(max_steps, expected):
    schedule = Schedule.resolve(ExperimentConfig(base=["x"], methods=["slt"], output_dir="x"), max_steps)
    assert (schedule.warmup_steps, schedule.rewind_step, schedule.mp_end_step, schedule.mp_frequency) == expected
    assert schedule.warnings() == []


@pytest.mark.parametrize("overrides, message", [
    ({"rewind_step": 30}, "rewind_step k=30 lies inside the warm-up (60 steps)"),
    ({"warmup_steps": 500}, "rewind_step k=150 lies inside the warm-up (500 steps)"),
    ({"rewind_step": 400}, "rewind_step k=400 is 13% of the run (3000 steps), beyond the 10 %"),
])
def test_a_schedule_that_breaks_the_k_rule_warns(overrides, message):
    config = ExperimentConfig(base=["x"], methods=["slt"], output_dir="x", **overrides)
    warnings = Schedule.resolve(config, 3000).warnings()
    assert len(warnings) == 1 and message in warnings[0]


def test_clt_constant_is_one_option_away(monkeypatch):
    from lightning_slt.experiments.methods import build_runs, run_callbacks

    for magnitude in ("fan_avg", "std"):
        config = ExperimentConfig(base=["x"], methods=["clt"], output_dir="x", targets=[0.5], clt_magnitude=magnitude)
        run = [r for r in build_runs(config, Schedule.resolve(config, 3000)) if r.kind == "clt"][0]
        reinit = run_callbacks(run, {"dense": "d.ckpt"}, Schedule.resolve(config, 3000), 0)[-1].to_config()
        assert reinit == {"class_path": "lightning_slt.callbacks.SignOnlyReinit", "init_args": {"magnitude": magnitude}}
    with pytest.raises(ValueError, match="clt_magnitude must be 'fan_avg'"):
        ExperimentConfig(base=["x"], methods=["clt"], output_dir="x", clt_magnitude="big")


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


def test_a_part_has_its_own_seeds_targets_and_reuses_earlier_parts():
    config = _config(targets=[0.5, 0.8, 0.9], parts={
        "a": {"methods": ["slt"], "seeds": [0, 1], "method_targets": {"slt": [0.5, 0.8]}},
        "b": {"methods": ["slt", "mp"], "seeds": [0, 1], "reuse": ["a"]}})
    first, second = selected_parts(config)
    assert (first.seeds, first.targets_of("slt"), first.reuse) == ([0, 1], [0.5, 0.8], [])
    assert (second.targets_of("slt"), second.reuse) == ([0.5, 0.8, 0.9], ["out/repro/a"])
    _, runs = _runs(second)  # the same names as part a's chain: a's runs are taken, not trained again
    assert {"dense", "dense/slt_0.50", "dense/slt_0.50/slt_0.80", "dense/slt_0.50/slt_0.80/slt_0.90"} <= set(runs)
    with pytest.raises(ValueError, match="part 'a': reuse names 'b', which is not a part before it "
                                         r"\(the parts, in order: a, b\)"):
        _config(parts={"a": {"methods": ["slt"], "reuse": ["b"]}, "b": {"methods": ["mp"]}})


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


def test_monitor_and_mode_are_checked_and_give_the_headline_metric(tmp_path):
    config = ExperimentConfig(base=["conf/multi30k_cpu.yaml"], methods=["slt"], output_dir=str(tmp_path / "x"),
                              monitor="val_acc")
    assert config.metric == "acc" and config.mode == "max"
    assert ExperimentConfig(base=["b.yaml"], methods=["slt"], output_dir="x").metric == "bleu"
    with pytest.raises(ValueError, match="mode must be 'max' or 'min' .*'val/loss'"):
        ExperimentConfig(base=["b.yaml"], methods=["slt"], output_dir="x", monitor="val/loss", mode="minimum")
    with pytest.raises(FileNotFoundError, match="pretrained 'nowhere.pt' does not exist"):
        ExperimentConfig(base=["b.yaml"], methods=["slt"], output_dir="x", pretrained="nowhere.pt")


def test_a_base_with_a_timer_or_max_time_gets_no_second_timer(monkeypatch):
    """Lightning refuses two Timers (stateful callbacks of one key), and adds its own for max_time."""
    monkeypatch.chdir(REPO_ROOT)
    config = load_config(REPO_ROOT / "conf/experiments/slt.yaml")
    base, schedule, runs = plan(config)
    last = {r.name: "x.ckpt" for r in runs}

    def timers(base: dict) -> int:
        callbacks = run_config(config, base, schedule, runs[0], 0, last).to_config()["trainer"]["callbacks"]
        return sum(c["class_path"].endswith(".Timer") for c in callbacks)

    assert timers(base) == 1
    timer = {"class_path": "pytorch_lightning.callbacks.Timer", "init_args": {"duration": "00:01:00:00"}}
    assert timers({**base, "trainer": {**base["trainer"], "callbacks": [*(base["trainer"]["callbacks"] or []), timer]}}) == 1
    assert timers({**base, "trainer": {**base["trainer"], "max_time": "00:01:00:00"}}) == 0
