"""The ``lightning-slt`` command: LightningCLI runs, callbacks from several configs, errors, dispatch."""

import csv
import json

import pytest
import torch
import yaml

from lightning_slt import cli

CALLS: list[list[str]] = []


def _record(argv: list[str]) -> int:
    CALLS.append(argv)
    return 7


@pytest.fixture
def tiny_config(tmp_path, data_root):
    """A complete fit config for a tiny model on 256 Multi30k pairs, with a ModelCheckpoint."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 3, "limit_val_batches": 1, "num_sanity_val_steps": 0, "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp_path),
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                       "init_args": {"save_dir": str(tmp_path / "logs"), "name": "tiny"}},
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True}}],
        },
        "model": {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64,
                  "max_positions": 128, "warmup_steps": 2, "beam_size": 1, "max_len_b": 3},
        "data": {"data_root": str(data_root), "cache_dir": str(tmp_path / "spm"), "vocab_size": 300,
                 "train_subset": 256, "valid_subset": 16, "test_subset": 16, "max_tokens": 512, "max_len": 64,
                 "eval_max_tokens": 1024},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write(tmp_path, name: str, config: dict):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fit_with_a_second_config_keeps_both_configs_callbacks(tiny_config, tmp_path):
    lr_monitor = write(tmp_path, "second.yaml", {"trainer": {"callbacks": [
        {"class_path": "pytorch_lightning.callbacks.LearningRateMonitor", "init_args": {"logging_interval": "step"}}]}})

    assert cli.main(["fit", "--config", str(tiny_config), "--config", lr_monitor]) == 0

    assert (tmp_path / "ckpt" / "last.ckpt").is_file()  # the base config's ModelCheckpoint ran
    with open(tmp_path / "logs" / "tiny" / "version_0" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert any(c.startswith("lr-AdamW") for c in columns)  # the second config's LearningRateMonitor ran
    assert {"train/loss", "lr"} <= set(columns)


def test_test_subcommand_writes_hypotheses_and_metrics_of_the_checkpoint(tiny_config, tmp_path):
    assert cli.main(["fit", "--config", str(tiny_config)]) == 0
    checkpoint = tmp_path / "ckpt" / "last.ckpt"
    assert cli.main(["test", "--config", str(tiny_config), "--ckpt_path", str(checkpoint)]) == 0

    run_dir = tmp_path / "logs" / "tiny" / "version_1"  # version_0 was the fit
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert (metrics["checkpoint"], metrics["global_step"], metrics["n_sentences"]) == (str(checkpoint), 3, 16)
    assert (run_dir / "hypotheses_test.txt").read_text(encoding="utf-8").count("\n") == 16


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


def test_unknown_config_key_is_named_in_the_error(tiny_config, tmp_path, capsys):
    typo = write(tmp_path, "typo.yaml", {"model": {"d_modle": 64}})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "--config", str(tiny_config), "--config", typo])
    assert exit_info.value.code != 0
    assert "model.d_modle" in capsys.readouterr().err


def test_link_fills_model_vocab_size_from_the_data(tiny_config):
    result = cli.TranslationCLI(args=["--config", str(tiny_config)], run=False)  # builds, runs nothing
    assert result.model.hparams.vocab_size == result.datamodule.vocab_size == 300
    assert result.datamodule.max_positions == 128  # linked from model.max_positions


def test_extra_subcommands_are_dispatched_before_lightning(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "record", f"{__name__}:_record")
    assert cli.main(["record", "--flag", "x"]) == 7
    assert CALLS[-1] == ["--flag", "x"]


def test_top_level_help_lists_extra_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "extra subcommands: demo" in out and "fit" in out


def test_quickstart_trains_tests_and_prints_bleu(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # quickstart logs to ./runs
    overrides = [
        "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--model.d_model=32", "--model.n_heads=2",
        "--model.encoder_layers=1", "--model.decoder_layers=1", "--model.d_ff=64", "--model.max_len_b=3",
        f"--data.data_root={data_root}", f"--data.cache_dir={tmp_path / 'spm'}", "--data.vocab_size=300",
        "--data.train_subset=256", "--data.valid_subset=8", "--data.test_subset=8", "--data.max_len=64",
    ]
    assert cli.main(["quickstart", *overrides]) == 0
    out = capsys.readouterr().out
    assert "Multi30k test en->de: BLEU" in out and "(8 sentences, beam 4)" in out
    version = tmp_path / "runs" / "quickstart" / "version_0"
    assert (version / "hypotheses_test.txt").read_text().count("\n") == 8
    assert (version / "metrics_test.json").is_file()


def test_demo_prunes_a_ticket_from_its_dense_run_and_prints_the_table(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo writes ./runs/demo
    overrides = [
        "--trainer.max_steps=4", "--model.d_model=32", "--model.n_heads=2", "--model.encoder_layers=1",
        "--model.decoder_layers=1", "--model.d_ff=64", "--model.max_len_b=3", "--model.warmup_steps=2",
        f"--data.data_root={data_root}", f"--data.cache_dir={tmp_path / 'spm'}", "--data.vocab_size=300",
        "--data.train_subset=256", "--data.test_subset=8", "--data.max_len=64",
    ]
    monkeypatch.setattr("lightning_slt.demo.SPEED_SENTENCES", 16)
    conf = tmp_path / "conf"  # the shipped demo configs, rewinding to θ2 of the 4-step dense run
    conf.mkdir()
    for name in ("base", "dense", "slt"):
        text = (cli.REPO_CONF / "demo" / f"{name}.yaml").read_text()
        (conf / f"{name}.yaml").write_text(text.replace("{step: 100}", "{step: 2}").replace("step: 100\n", "step: 2\n"))
    assert cli.main(["demo", "--config-dir", str(conf), *overrides]) == 0
    out = capsys.readouterr().out
    dense, slt = tmp_path / "runs/demo/dense", tmp_path / "runs/demo/slt"
    from lightning_slt.artifacts.ticket import read_ticket

    ticket = read_ticket(slt / "model.ticket")
    kept = sum(int(m.sum()) for m in ticket.masks.values())
    assert 1 - kept / sum(m.numel() for m in ticket.masks.values()) == pytest.approx(0.8, abs=1e-3)  # conf/demo/slt.yaml
    checkpoint = torch.load(slt / "last.ckpt", map_location="cpu", weights_only=False)
    dense_checkpoint = torch.load(dense / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == dense_checkpoint["global_step"] == 4
    assert "| Multi30k en→de, 4 + 4 steps | dense | SLT ticket |" in out
    for row in ("| test2016 BLEU (greedy) |", "| parameters remaining |", "| file | last.ckpt ",
                "| translation speed, 16 sentences, "):
        assert row in out
    assert "lightning-slt experiment --config conf/experiments/slt.yaml" in out


@pytest.mark.parametrize("unit, env, expected", [("none", None, "32-true"), ("none", "1", "bf16-mixed"),
                                                 ("AVX512-BF16", None, "bf16-mixed"), ("AMX", None, "bf16-mixed")])
def test_bf16_on_a_cpu_without_bf16_matmuls_trains_in_fp32_and_says_so(tiny_config, monkeypatch, caplog, unit, env,
                                                                       expected):
    """bf16 matmuls are emulated ~50x slower than fp32 on an AVX2-only CPU (0.7 against 35.6
    GFLOP/s measured on an AMD EPYC): a bf16-mixed config trains in 32-true there, with a warning."""
    import lightning_slt._runtime as runtime

    monkeypatch.setattr(runtime, "bf16_matmul_unit", lambda: unit)
    monkeypatch.delenv(runtime.CPU_BF16_ENV, raising=False)
    if env:
        monkeypatch.setenv(runtime.CPU_BF16_ENV, env)
    with caplog.at_level("WARNING"):
        result = cli.TranslationCLI(args=["--config", str(tiny_config), "--trainer.precision=bf16-mixed",
                                          "--trainer.accelerator=cpu"], run=False)
    assert result.trainer.precision == expected and result.config.trainer.precision == expected
    warned = [r.getMessage() for r in caplog.records if "only emulates" in r.getMessage()]
    assert len(warned) == (expected == "32-true")
    if warned:
        assert "no AMX, no AVX512-BF16" in warned[0] and "LIGHTNING_SLT_CPU_BF16=1" in warned[0]
    assert runtime.cpu_precision("32-true", "cpu") == ("32-true", None)  # asked for fp32: nothing to say
    assert runtime.cpu_precision("bf16-mixed", "gpu") == ("bf16-mixed", None)  # a GPU's bf16 is its own matter
