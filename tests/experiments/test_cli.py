"""``lightning-slt experiment`` and ``lightning-slt report``: errors said before any training as one
line naming the command, the report printed with the files it wrote."""

import pytest

from lightning_slt.experiments.cli import experiment_main, report_main

from ._synthetic import _synthetic_experiment


def test_experiment_needs_a_config_and_names_a_missing_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        experiment_main([])
    assert info.value.code == 2 and "the following arguments are required: --config" in capsys.readouterr().err
    absent = tmp_path / "absent.yaml"
    with pytest.raises(SystemExit, match=f"^lightning-slt experiment: {absent}: no such file \\(relative paths are read "
                                         "from .*\\); give an experiment YAML, e.g. conf/experiments/slt.yaml$"):
        experiment_main(["--config", str(absent)])


def test_an_experiment_yaml_typo_is_one_line_naming_the_file_and_the_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(f"base: [b.yaml]\nmethods: [slt]\ntargts: [0.5]\noutput_dir: {tmp_path / 'out'}\n")
    with pytest.raises(SystemExit, match=f"^lightning-slt experiment: {config}: unknown key 'targts'; did you mean "
                                         "'targets'\\?$"):
        experiment_main(["--config", str(config)])


def test_experiment_refuses_an_unknown_method_before_training(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text(f"base: [b.yaml]\nmethods: [slt, mpp]\ntargets: [0.5]\noutput_dir: {tmp_path / 'out'}\n")
    with pytest.raises(SystemExit, match=r"^lightning-slt experiment: .*mpp"):
        experiment_main(["--config", str(config)])
    assert not (tmp_path / "out").exists()


def test_report_prints_the_table_and_the_files_it_wrote(tmp_path, capsys):
    _synthetic_experiment(tmp_path, {"mp": 27.0, "slt": 29.0})
    assert report_main([str(tmp_path), "--paper", "none"]) == 0
    out = capsys.readouterr().out
    assert "| 50% | 1.0 MB | 27.0 ± 0.0 | 60.0 ± 0.0 | 29.0 ± 0.0 | 60.0 ± 0.0 |" in out
    assert out.rstrip().splitlines()[-3:] == [f"wrote {tmp_path / name}" for name in
                                              ("results.csv", "results.md", "bleu_vs_sparsity.png")]
    assert not (tmp_path / "claims.md").exists()  # only with --claims


def test_report_of_a_folder_that_is_no_experiment_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=f"^lightning-slt report: {tmp_path} holds no experiment.json and no parts with "
                                         "one: it is not an experiment folder"):
        report_main([str(tmp_path)])
