"""Building one run from a config: typed components and run configs, callback lists concatenated
across config files, the links LightningCLI gets, shipped configs found, and checkpoints that are
not a TranslationModule's refused before anything runs."""

import copy

import pytest

from lightning_slt import WeightRewind, cli
from lightning_slt.checkpointing import BestAfterStep
from lightning_slt.launch import (
    REPO_CONF,
    Component,
    RunConfig,
    _append_callbacks,
    _check_written_by_translation_module,
    _resolved_by_lightning,
    conf_file,
    public_path,
)

from ._run_configs import write


def test_callbacks_concatenate_in_config_order_and_the_model_gets_the_vocab(tiny_config, tmp_path):
    early_stopping = {"class_path": "pytorch_lightning.callbacks.EarlyStopping",
                      "init_args": {"monitor": "val/bleu", "mode": "max"}}
    stopper = write(tmp_path, "stop.yaml", {"trainer": {"callbacks": early_stopping}})  # a single callback
    monitor = write(tmp_path, "monitor.yaml", {"trainer": {"callbacks": [
        {"class_path": "pytorch_lightning.callbacks.LearningRateMonitor"}]}, "model": {"lr": 0.0005}})

    config = cli.parse_config(["fit", "--config", str(tiny_config), "--config", stopper, "--config", monitor])

    assert [c.class_path for c in config.fit.trainer.callbacks] == [
        "pytorch_lightning.callbacks.ModelCheckpoint",
        "pytorch_lightning.callbacks.EarlyStopping",
        "pytorch_lightning.callbacks.LearningRateMonitor",
    ]
    assert config.fit.model.lr == 0.0005 and config.fit.model.d_model == 32  # other keys still merge


def test_command_line_callbacks_still_replace_the_list(tiny_config):
    config = cli.parse_config(["fit", "--config", str(tiny_config), "--trainer.callbacks=[]"])
    assert config.fit.trainer.callbacks == []


def test_link_fills_model_vocab_size_from_the_data(tiny_config):
    result = cli.TranslationCLI(args=["--config", str(tiny_config)], run=False)  # builds, runs nothing
    assert result.model.hparams.vocab_size == result.datamodule.vocab_size == 300
    assert result.datamodule.max_positions == 128  # linked from model.max_positions


def test_a_component_binds_its_arguments_when_specified():
    assert Component.of(WeightRewind, step=150, restore_optimizer=True).to_config() == {
        "class_path": "lightning_slt.callbacks.WeightRewind", "init_args": {"step": 150, "restore_optimizer": True}}
    with pytest.raises(TypeError, match=r"^WeightRewind\(stepp\): got an unexpected keyword argument 'stepp'; see its "
                                        r"docstring for the arguments$"):
        Component.of(WeightRewind, stepp=150)


def test_class_paths_go_through_the_nearest_package_that_exports_the_class():
    from lightning_slt.model.module import TranslationModule

    assert public_path(WeightRewind) == "lightning_slt.callbacks.WeightRewind"
    assert public_path(BestAfterStep) == "lightning_slt.checkpointing.BestAfterStep"
    assert public_path(TranslationModule) == "lightning_slt.TranslationModule"  # the lazy top-level name
    assert public_path(Component) == "lightning_slt.launch.Component"


def test_a_run_config_replaces_the_bases_parts_and_leaves_the_base_alone():
    base = {"seed_everything": 0, "model": {"lr": 1.0, "d_model": 8},
            "trainer": {"max_steps": 10, "callbacks": [], "logger": None, "default_root_dir": None}}
    kept = {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}
    run = RunConfig(base=base, callbacks=[kept, Component.of(WeightRewind, step=3)],
                    logger=Component("pytorch_lightning.loggers.CSVLogger", {"save_dir": "logs"}), seed=5,
                    root_dir="runs/a", model={"lr": 0.5}, trainer={"max_steps": 20})
    before = copy.deepcopy(base)
    assert run.to_config() == {
        "seed_everything": 5, "model": {"lr": 0.5, "d_model": 8},
        "trainer": {"max_steps": 20, "default_root_dir": "runs/a",
                    "callbacks": [kept, {"class_path": "lightning_slt.callbacks.WeightRewind", "init_args": {"step": 3}}],
                    "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "logs"}}}}
    assert base == before and run.to_config()["trainer"]["callbacks"][0] is not kept


def test_every_config_files_callbacks_become_an_append():
    assert _append_callbacks("trainer:\n  callbacks:\n  - class_path: A\n", "yaml") == (
        "trainer:\n  callbacks+:\n  - class_path: A\n")
    assert _append_callbacks("fit:\n  trainer:\n    callbacks: []\n", "yaml") == "fit:\n  trainer:\n    callbacks+: []\n"
    assert _append_callbacks("trainer.callbacks: []\nmodel: {lr: 1}\n", "yaml") == (
        "trainer.callbacks+: []\nmodel:\n  lr: 1\n")
    for unchanged in ("model:\n  lr: 1   # a comment kept\n", "[not, a, mapping]", "{unclosed"):
        assert _append_callbacks(unchanged, "yaml") is unchanged
    assert _append_callbacks("trainer:\n  callbacks: []\n", "jsonnet") == "trainer:\n  callbacks: []\n"


def test_shipped_configs_are_found_beside_the_package_and_a_missing_one_is_named(tmp_path, monkeypatch):
    assert conf_file("demo/base.yaml") == REPO_CONF / "demo" / "base.yaml" and REPO_CONF == cli.REPO_CONF
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"^conf/nope.yaml not found next to the package \\({REPO_CONF}\\) or "
                                                f"in {tmp_path}$"):
        conf_file("nope.yaml")


def test_lightnings_own_checkpoint_names_and_urls_are_left_to_lightning():
    for name in ("last", "best", "hpc", "registry:model:latest", "s3://bucket/last.ckpt"):
        assert _resolved_by_lightning(name), name
    assert not _resolved_by_lightning("runs/last.ckpt") and not _resolved_by_lightning("lastly.ckpt")


def test_a_checkpoint_not_written_by_a_translation_module_is_named_for_what_it_is():
    with pytest.raises(ValueError, match=r"^checkpoint w.pt holds a dict without 'state_dict': it is not a Lightning "
                                         r"checkpoint \(a plain state_dict or mask file goes to ConvergedMask"):
        _check_written_by_translation_module({"w": 1}, "w.pt")
    with pytest.raises(ValueError, match=r"checkpoint list.pt holds a list without 'state_dict'"):
        _check_written_by_translation_module([1], "list.pt")
    other = {"state_dict": {}, "hyper_parameters": {"hidden": 3, "_instantiator": "x", "lr": 1.0, "n_classes": 2}}
    with pytest.raises(ValueError, match=r"^checkpoint o.ckpt was not written by a TranslationModule: its "
                                         r"hyper-parameters \['hidden', 'n_classes'\] are not TranslationModule "
                                         r"arguments; pass a checkpoint of `lightning-slt fit`, or name the module "
                                         r"that wrote it in the config \(model: {class_path: your_module.YourModule}\)$"):
        _check_written_by_translation_module(other, "o.ckpt")
    _check_written_by_translation_module({"state_dict": {}, "hyper_parameters": {"lr": 1.0, "d_model": 8}}, "ok.ckpt")


def test_our_classes_by_class_path_parse_as_the_default(tiny_config, tmp_path):
    import yaml

    config = yaml.safe_load(tiny_config.read_text())
    config["model"] = {"class_path": "lightning_slt.TranslationModule", "init_args": config["model"]}
    config["data"] = {"class_path": "lightning_slt.data.TranslationDataModule", "init_args": config["data"]}
    path = write(tmp_path, "ours.yaml", config)
    parsed = cli.parse_config(["fit", "--config", path])
    assert parsed.fit.model.d_model == 32  # the flat form of ours: vocab_size and max_positions still linked


def test_in_subclass_mode_a_data_mapping_without_class_path_is_ours():
    import yaml

    content = "model:\n  class_path: mymod.Clf\ndata:\n  corpus: multi30k\n"
    rewritten = yaml.safe_load(_append_callbacks(content, "yaml", own_classes=True))
    assert rewritten["data"] == {"class_path": "lightning_slt.data.TranslationDataModule",
                                 "init_args": {"corpus": "multi30k"}}
    assert rewritten["model"] == {"class_path": "mymod.Clf"}


def test_model_arguments_of_either_form_and_a_run_config_updates_them():
    from lightning_slt.launch import model_arguments

    assert model_arguments({"model": {"d_model": 8}}) == {"d_model": 8}
    assert model_arguments({"model": {"class_path": "mymod.Clf", "init_args": {"lr": 0.1}}}) == {"lr": 0.1}
    base = {"trainer": {}, "model": {"class_path": "mymod.Clf", "init_args": {"lr": 0.1}}}
    run = RunConfig(base=base, callbacks=[], logger=Component("x.Logger"), seed=1, root_dir="r",
                    model={"warmup_steps": 4})
    assert run.to_config()["model"] == {"class_path": "mymod.Clf", "init_args": {"lr": 0.1, "warmup_steps": 4}}
    assert base["model"]["init_args"] == {"lr": 0.1}  # the parsed base is never changed


def test_a_module_of_the_other_lightning_namespace_is_refused_naming_the_fix(tmp_path, monkeypatch):
    from lightning_slt._lightning import NAMESPACE
    from lightning_slt.launch import check_namespace

    other = "lightning.pytorch" if NAMESPACE == "pytorch_lightning" else "pytorch_lightning"
    (tmp_path / "othermod.py").write_text(f"import {other} as pl\n\nclass M(pl.LightningModule):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=f"subclasses {other}.LightningModule .* set LIGHTNING_SLT_NAMESPACE={other}"):
        check_namespace(["--model=othermod.M"])
