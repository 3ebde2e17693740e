"""Every shipped experiment config loads, type-checks and plans its chains without training."""

from pathlib import Path

import pytest

from lightning_slt.experiments import load_config, plan

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO_ROOT / "conf" / "experiments").glob("*.yaml"))


def test_there_is_one_config_per_method_and_the_paper_setup():
    names = {p.stem for p in CONFIGS}
    assert {"mp", "lt", "slt", "clt", "slt_mp", "mp_slt", "controls", "paper_wmt14_ende"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_experiment_config_plans(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = load_config(path)
    base, schedule, runs = plan(config)
    assert runs[0].name == "dense" and len(runs) > len(config.methods)
    assert 0 < schedule.rewind_step <= schedule.mp_end_step <= schedule.max_steps
    # the runs validate every val_check_interval steps across epochs (a Multi30k epoch is ~120
    # steps): the base config's explicit null must survive into every run's config
    assert base["trainer"]["check_val_every_n_epoch"] is None and base["trainer"]["max_time"] is None
    if path.stem == "paper_wmt14_ende":
        assert (schedule.max_steps, schedule.rewind_step, schedule.mp_end_step, schedule.mp_frequency) == (500_000, 25_000, 400_000, 10_000)
        assert base["model"]["optimizer"] == "adafactor" and base["model"]["d_model"] == 512
        assert len([r for r in runs if "slt" in r.methods]) == 13  # dense + 12 rounds to 98 %


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

    from lightning_slt.cli import TranslationCLI
    from lightning_slt.experiments.runner import _manifest

    monkeypatch.chdir(REPO_ROOT)
    config = load_config(REPO_ROOT / "conf" / "experiments" / "slt.yaml")
    base, schedule, _ = plan(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = TranslationCLI(args=["--config", "conf/multi30k_cpu.yaml", *config.base_args], run=False, parse_only=True)
    without_nulls = yaml.safe_load(cli.parser.dump(cli.config))  # jsonargparse's default: skip_none=True
    expected = hashlib.sha256(yaml.safe_dump(without_nulls, sort_keys=True).encode()).hexdigest()
    assert _manifest(config, base, schedule)["base_config_sha256"] == expected
