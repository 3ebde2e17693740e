"""The ``lightning-slt`` command: LightningCLI runs, callbacks from several configs, errors, dispatch."""

import csv
import json

import pytest

from lightning_slt import cli

from ._run_configs import write

CALLS: list[list[str]] = []


def _record(argv: list[str]) -> int:
    CALLS.append(argv)
    return 7


@pytest.mark.slow
def test_fit_with_a_second_config_keeps_both_configs_callbacks(tiny_config, tmp_path):
    lr_monitor = write(tmp_path, "second.yaml", {"trainer": {"callbacks": [
        {"class_path": "pytorch_lightning.callbacks.LearningRateMonitor", "init_args": {"logging_interval": "step"}}]}})

    assert cli.main(["fit", "--config", str(tiny_config), "--config", lr_monitor]) == 0

    assert (tmp_path / "ckpt" / "last.ckpt").is_file()  # the base config's ModelCheckpoint ran
    with open(tmp_path / "logs" / "tiny" / "version_0" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert any(c.startswith("lr-AdamW") for c in columns)  # the second config's LearningRateMonitor ran
    assert {"train/loss", "lr"} <= set(columns)


@pytest.mark.slow
def test_test_subcommand_writes_hypotheses_and_metrics_of_the_checkpoint(tiny_config, tmp_path):
    assert cli.main(["fit", "--config", str(tiny_config)]) == 0
    checkpoint = tmp_path / "ckpt" / "last.ckpt"
    assert cli.main(["test", "--config", str(tiny_config), "--ckpt_path", str(checkpoint)]) == 0

    run_dir = tmp_path / "logs" / "tiny" / "version_1"  # version_0 was the fit
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert (metrics["checkpoint"], metrics["global_step"], metrics["n_sentences"]) == (str(checkpoint), 3, 16)
    assert (run_dir / "hypotheses_test.txt").read_text(encoding="utf-8").count("\n") == 16


def test_unknown_config_key_is_named_in_the_error(tiny_config, tmp_path, capsys):
    typo = write(tmp_path, "typo.yaml", {"model": {"d_modle": 64}})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "--config", str(tiny_config), "--config", typo])
    assert exit_info.value.code != 0
    assert "model.d_modle" in capsys.readouterr().err


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


@pytest.mark.slow
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
