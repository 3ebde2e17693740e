"""Plans and reports: an experiment YAML, a plan or a results folder that cannot give what it
promises is refused in one line that says what is wrong, where, and how to fix it, before any
training, and without writing a file or changing one; a report of a half-finished experiment
says which runs it still lacks.

No case trains: plans are checked on the tiny base config, reports read synthetic experiment
folders as the runner writes them (``tests/experiments/_synthetic.py``). Every refused case is one
bad input of the suite's figures line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_slt import cli
from lightning_slt.experiments import ExperimentConfig

from tests.experiments._synthetic import _synthetic_experiment

from .tiny import REPO_ROOT, file_states

BASE = str(REPO_ROOT / "tests" / "experiments" / "tiny_base.yaml")
BLEU = {"mp": 27.0, "slt": 29.0}  # the synthetic folder: dense 30.0, 30.4, 29.8 over seeds 0, 1, 2


def _refused(command: list[str]) -> str:
    """The one-line message ``lightning-slt <command>`` exits with (no traceback)."""
    with pytest.raises(SystemExit) as info:
        cli.main(command)
    message = info.value.code
    assert isinstance(message, str), f"exit code {message!r}, not a message"
    assert "\n" not in message and "Traceback" not in message, message
    return message


def _says(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def _yaml(tmp_path: Path, text: str | None = None, **settings) -> Path:
    """An experiment YAML on the tiny base (JSON is YAML), or ``text`` as it is."""
    path = tmp_path / "exp.yaml"
    if text is None:
        text = json.dumps({"base": [BASE], "methods": ["slt"], "targets": [0.5], "output_dir": str(tmp_path / "out"),
                           **settings})
    path.write_text(text)
    return path


def _experiment_refused(tmp_path: Path, config: Path, *fragments: str, where: str | None = None) -> str:
    before = file_states(tmp_path)
    message = _refused(["experiment", "--config", str(config)])
    _says(message, *fragments)
    if where is not None:
        assert message.startswith(f"lightning-slt experiment: {where}"), message
    assert file_states(tmp_path) == before
    assert not (tmp_path / "out").exists()
    return message


# ----------------------------------------------------------------------------- plans: a method that trains none of its targets

NO_TARGET_TRAINED = {  # id: (settings, what the message says)
    "mp_slt_at_its_source": (dict(methods=["mp_slt"], targets=[0.6]),
                             ["mp_slt trains none of its targets [0.6]", "mp_slt_source=0.6",
                              "Give it a target above 0.6", "method_targets: {mp_slt: [...]}", "lower mp_slt_source"]),
    "mp_slt_below_and_at_its_source": (dict(methods=["mp_slt"], targets=[0.3, 0.6]),
                                       ["mp_slt trains none of its targets [0.3, 0.6]", "mp_slt_source=0.6"]),
    "mp_slt_beside_mp_below_its_source": (dict(methods=["mp", "mp_slt"], targets=[0.3, 0.5]),
                                          ["mp_slt trains none of its targets [0.3, 0.5]"]),
    "mp_slt_own_targets_below_its_source": (dict(methods=["slt", "mp_slt"], targets=[0.3, 0.5, 0.9],
                                                 method_targets={"mp_slt": [0.4]}),
                                            ["mp_slt trains none of its targets [0.4]"]),
    "slt_mp_at_its_switch": (dict(methods=["slt_mp"], targets=[0.6]),
                             ["slt_mp trains none of its targets [0.6]", "slt_mp_switch=0.6",
                              "Give it a target above 0.6", "lower slt_mp_switch"]),
    "slt_mp_at_its_rounds": (dict(methods=["slt_mp"], targets=[0.5, 0.6]),
                             ["slt_mp trains none of its targets [0.5, 0.6]"]),
    "a_part_whose_mp_slt_trains_nothing": (dict(methods=[], targets=[0.5, 0.9], method_targets={"mp_slt": [0.5]},
                                                parts={"p1": {"methods": ["slt"]}, "p2": {"methods": ["mp_slt"]}}),
                                           ["part 'p2'", "mp_slt trains none of its targets [0.5]"]),
}


@pytest.mark.parametrize("case", NO_TARGET_TRAINED)
def test_a_method_that_trains_none_of_its_targets_is_refused(case, tmp_path, tally):
    settings, says = NO_TARGET_TRAINED[case]
    _experiment_refused(tmp_path, _yaml(tmp_path, **settings), *says)
    tally("bad_inputs")


def test_a_method_that_trains_some_of_its_targets_plans_them():
    from lightning_slt.experiments import Schedule, build_runs

    config = ExperimentConfig(base=[BASE], output_dir="unused", methods=["mp_slt"], targets=[0.6, 0.8])
    runs = [run.name for run in build_runs(config, Schedule.resolve(config, 100))]
    assert runs == ["dense", "mp_0.60", "mp_0.60/slt_0.80"]


# ----------------------------------------------------------------------------- the experiment YAML itself


def _base_lines(tmp_path: Path) -> str:
    return f"base: [{BASE}]\nmethods: [slt]\ntargets: [0.5]\noutput_dir: {tmp_path / 'out'}\n"


YAML_CASES = {  # id: (text after the base lines, or the whole file when it starts with '!', what it says)
    "key_misspelt": ("targts: [0.5]\n", ["unknown key 'targts'", "did you mean 'targets'?"]),
    "value_of_the_wrong_type": ("rewind_step: early\n", ["rewind_step must be int | None, got early"]),
    "list_given_a_word": ("seeds: one\n", ["seeds must be list[int], got one", "[a, b, ...]"]),
    "broken_yaml": ("!base: [a.yaml\nmethods: [slt]\n", ["line 2, column 8", "broken YAML",
                                                          "expected ',' or ']', but got ':'", "line 1, column 7"]),
    "a_tab_indent": ("!methods: [slt]\n\ttargets: [0.5]\n", ["line 2, column 1", "broken YAML"]),
    "empty_file": ("!", ["is empty", "base:", "output_dir:"]),
    "a_list_not_a_mapping": ("!- slt\n- mp\n", ["holds a list, not a mapping of settings"]),
    "a_key_given_twice": ("methods: [mp]\n", ["line 5", "methods is given twice", "YAML keeps only the last"]),
    "required_key_missing": ("!methods: [slt]\noutput_dir: out\n", ["base is missing", "base: ["]),
    "unknown_key_of_a_part": ("parts: {p1: {method: [slt]}}\n", ["parts: unknown key 'method'",
                                                                  "did you mean 'methods'?"]),
    "wrong_type_in_a_part": ("parts: {p1: {methods: slt}}\n", ["parts.methods must be list[str], got slt"]),
}


@pytest.mark.parametrize("case", YAML_CASES)
def test_experiment_yaml_mistakes_are_one_line_naming_the_file_and_the_key(case, tmp_path, tally):
    text, says = YAML_CASES[case]
    text = text[1:] if text.startswith("!") else _base_lines(tmp_path) + text
    path = _yaml(tmp_path, text)
    _experiment_refused(tmp_path, path, *says, where=str(path))
    tally("bad_inputs")


def test_a_missing_or_folder_config_is_named(tmp_path, tally):
    absent = tmp_path / "absent.yaml"
    _says(_refused(["experiment", "--config", str(absent)]), f"{absent}: no such file", "conf/experiments/")
    (tmp_path / "folder.yaml").mkdir()
    _says(_refused(["experiment", "--config", str(tmp_path / "folder.yaml")]), "is a folder, not an experiment YAML")
    tally("bad_inputs", 2)


def test_a_wrong_value_on_the_command_line_is_named_as_such(tmp_path, tally):
    path = _yaml(tmp_path)
    message = _refused(["experiment", "--config", str(path), "--targets=high"])
    assert message.startswith("lightning-slt experiment: --targets=high: targets must be list[float], got high"), message
    tally("bad_inputs")


def test_an_unknown_option_on_the_command_line_is_named_as_such(tmp_path, tally):
    message = _refused(["experiment", "--config", str(_yaml(tmp_path)), "--targts=[0.5]"])
    assert message == ("lightning-slt experiment: --targts=[0.5]: unknown option '--targts'; did you mean "
                       "'--targets'?"), message
    tally("bad_inputs")


def test_the_installed_command_says_broken_yaml_in_one_line(tmp_path, tally):
    """Through ``python -m lightning_slt.cli`` (the path that reads the YAML for the base's
    Lightning namespace first), not only ``cli.main``."""
    path = _yaml(tmp_path, "base: [a.yaml\nmethods: [slt]\n")
    done = subprocess.run([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lightning-slt experiment: {path}, line 2, column 8: broken YAML"), \
        done.stderr[-3000:]
    tally("bad_inputs")


# ----------------------------------------------------------------------------- settings that cannot be run


SETTING_CASES = {  # id: (settings, what the message says)
    "a_method_listed_twice": (dict(methods=["slt", "mp", "slt"]), ["methods lists 'slt' more than once"]),
    "no_method": (dict(methods=[]), ["methods is empty", "methods: [slt]"]),
    "a_negative_seed": (dict(seeds=[0, -1]), ["seeds[1] = -1 is not a seed", "0 to 4294967295"]),
    "a_seed_beyond_numpy": (dict(seeds=[2 ** 32]), ["seeds[0] = 4294967296 is not a seed"]),
    "a_negative_dense_seed": (dict(dense_seeds=[-3]), ["dense_seeds[0] = -3 is not a seed"]),
    "empty_targets": (dict(targets=[]), ["targets is empty"]),
    "empty_output_dir": (dict(output_dir=""), ["output_dir is empty"]),
    "empty_base": (dict(base=[]), ["base is empty", "base: [conf/multi30k_cpu.yaml]"]),
}


@pytest.mark.parametrize("case", SETTING_CASES)
def test_settings_that_cannot_be_run_are_refused(case, tmp_path, tally):
    settings, says = SETTING_CASES[case]
    _experiment_refused(tmp_path, _yaml(tmp_path, **settings), *says)
    tally("bad_inputs")


PART_NAMES = ["results.md", "results.csv", "experiment.json", "parts.json", "claims.md", "bleu_vs_sparsity.png",
              "experiment.lock", "seed0", "seed12"]


@pytest.mark.parametrize("name", PART_NAMES)
def test_a_part_named_like_a_file_of_the_experiment_folder_is_refused(name, tmp_path, tally):
    config = _yaml(tmp_path, methods=[], parts={"p1": {"methods": ["slt"]}, name: {"methods": ["mp"]}})
    _experiment_refused(tmp_path, config, f"part name {name!r} is", "rename the part")
    tally("bad_inputs")


def test_an_output_dir_that_is_a_file_is_refused(tmp_path, tally):
    (tmp_path / "out").write_text("notes")
    config = _yaml(tmp_path)
    before = file_states(tmp_path)
    _says(_refused(["experiment", "--config", str(config)]), f"output_dir {tmp_path / 'out'} is a file",
          "give a folder")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_an_output_dir_inside_another_experiment_is_refused(tmp_path, tally):
    other = tmp_path / "other"
    other.mkdir()
    _synthetic_experiment(other, BLEU)
    config = _yaml(tmp_path, output_dir=str(other / "seed0" / "mine"))
    before = file_states(tmp_path)
    _says(_refused(["experiment", "--config", str(config)]), f"is inside the experiment folder {other}",
          "choose a folder outside it")
    assert file_states(tmp_path) == before and not (other / "seed0" / "mine").exists()
    tally("bad_inputs")


@pytest.mark.parametrize("name", ["experiment.lock", "results.md"])
def test_a_folder_where_the_experiment_writes_a_file_is_refused_before_training(name, tmp_path, tally):
    """experiment.lock as a folder was a raw IsADirectoryError; results.md as a folder failed
    only after every run trained, when the report was written."""
    (tmp_path / "out" / name).mkdir(parents=True)
    config = _yaml(tmp_path)
    before = file_states(tmp_path)
    _says(_refused(["experiment", "--config", str(config)]), f"{tmp_path / 'out' / name} is a folder",
          "move it away")
    assert file_states(tmp_path) == before and sorted(p.name for p in (tmp_path / "out").iterdir()) == [name]
    tally("bad_inputs")


@pytest.mark.parametrize("name", ["results.md", "bleu_vs_sparsity.png", "claims.md"])
def test_a_folder_where_the_report_writes_a_file_is_named_before_it_writes(name, tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    (tmp_path / name).mkdir()
    before = file_states(tmp_path)
    _says(_refused(["report", str(tmp_path), "--paper", "none", "--claims"]), f"{tmp_path / name} is a folder",
          "move it away")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_a_lock_file_that_is_a_folder_is_named_with_the_fix(tmp_path, tally):
    from lightning_slt.experiments.lock import ExperimentLockedError, experiment_lock

    (tmp_path / "experiment.lock").mkdir()
    with pytest.raises(ExperimentLockedError) as info:
        with experiment_lock(tmp_path):
            pass
    _says(str(info.value), f"{tmp_path / 'experiment.lock'} is a folder", "remove it")
    tally("bad_inputs")


def test_parts_that_share_a_method_each_run_it():
    """Allowed: each part is an experiment of its own (the joint table takes the first)."""
    config = ExperimentConfig(base=[BASE], output_dir="unused", targets=[0.5],
                              parts={"a": {"methods": ["slt"]}, "b": {"methods": ["slt", "mp"]}})
    assert [config.for_part(name).methods for name in config.parts] == [["slt"], ["slt", "mp"]]


# ----------------------------------------------------------------------------- reports: metrics.json


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


RUN = "seed0/dense/slt_0.50/metrics.json"

METRICS_CASES = {  # id: (how the run's metrics.json is changed, what the message says)
    "test_bleu_nan": (lambda d: d["test"].update(bleu=float("nan")), "test.bleu is nan, not a finite number"),
    "test_bleu_infinite": (lambda d: d["test"].update(bleu=float("inf")), "test.bleu is inf, not a finite number"),
    "test_bleu_a_string": (lambda d: d["test"].update(bleu="29.0"), "test.bleu is '29.0', not a finite number"),
    "test_a_list": (lambda d: d.update(test=[29.0]), "test is [29.0], not a mapping"),
    "sparsity_target_missing": (lambda d: d.pop("sparsity_target"), "has no 'sparsity_target'"),
    "sparsity_target_a_string": (lambda d: d.update(sparsity_target="0.5"),
                                 "sparsity_target is '0.5', not a sparsity in [0, 1)"),
    "sparsity_target_above_one": (lambda d: d.update(sparsity_target=1.5),
                                  "sparsity_target is 1.5, not a sparsity in [0, 1)"),
    "seed_a_string": (lambda d: d.update(seed="0"), "seed is '0', not an integer"),
    "reported_in_a_string": (lambda d: d.update(reported_in="slt"), "reported_in is 'slt', not a list of names"),
    "copied_from_another_run": (lambda d: d.update(run="mp_0.50"),
                                "says it is run 'mp_0.50' of seed 0, but it lies in seed0/dense/slt_0.50"),
    "a_list_not_a_mapping": (lambda d: d.clear(), None),  # replaced by a JSON list below
}


@pytest.mark.parametrize("claims", [False, True], ids=["report", "claims"])
@pytest.mark.parametrize("case", METRICS_CASES)
def test_a_bad_metrics_json_is_named_with_its_key_and_the_fix(case, claims, tmp_path, tally):
    change, says = METRICS_CASES[case]
    _synthetic_experiment(tmp_path, BLEU)
    if says is None:
        (tmp_path / RUN).write_text("[29.0, 60.0]")
        says = "holds a list, not the mapping of a run's figures"
    else:
        _edit(tmp_path / RUN, change)
    before = file_states(tmp_path)
    message = _refused(["report", str(tmp_path), "--paper", "none", *(["--claims"] if claims else [])])
    _says(message, str(tmp_path / RUN), says, "delete it and run the experiment again")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_a_users_metric_is_validated_and_reported(tmp_path, tally):
    """A module's own metric (monitor val/acc): its figures reported, a NaN one refused by name."""
    _synthetic_experiment(tmp_path, BLEU)
    _edit(tmp_path / "experiment.json", lambda d: d["config"].update(monitor="val/acc"))
    for path in tmp_path.rglob("metrics.json"):
        _edit(path, lambda d: (d.update(test={"acc": 90.0, "loss": 0.25}, valid={"acc": 91.0})))
    assert cli.main(["report", str(tmp_path), "--paper", "none"]) == 0
    assert "| 50% | 1.0 MB | 90 ± 0 | 90 ± 0 |" in (tmp_path / "results.md").read_text()
    _edit(tmp_path / RUN, lambda d: d["test"].update(loss=float("nan")))
    before = file_states(tmp_path)
    _says(_refused(["report", str(tmp_path), "--paper", "none"]), str(tmp_path / RUN), "test.loss is nan")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- reports: missing runs, seeds, test outputs


@pytest.mark.parametrize("seed", [1, 0], ids=["of_the_spread", "of_the_compared_seed"])
def test_a_missing_dense_run_is_named_not_blamed_on_seeds_or_references(seed, tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    (tmp_path / f"seed{seed}" / "dense" / "metrics.json").unlink()
    before = file_states(tmp_path)
    message = _refused(["report", str(tmp_path), "--paper", "none", "--claims"])
    _says(message, f"the dense run of seed {seed} has not finished",
          str(tmp_path / f"seed{seed}" / "dense" / "metrics.json"), "run the experiment again")
    assert "train it with seeds" not in message and "references_test.txt" not in message
    after = file_states(tmp_path)  # the report is written (it shows the finished runs); claims.md is not
    assert {path: after[path] for path in before} == before and not (tmp_path / "claims.md").exists()
    tally("bad_inputs")


def test_a_seed_the_experiment_does_not_have_is_named_with_its_seeds(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    message = _refused(["report", str(tmp_path), "--paper", "none", "--claims", "--seed", "7"])
    _says(message, "--seed 7", "has no seed 7", "its seeds are [0, 1, 2]")
    assert "references" not in message and not (tmp_path / "claims.md").exists()
    tally("bad_inputs")


def test_a_truncated_hypothesis_file_is_named_with_both_line_counts(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    hypotheses = tmp_path / "seed0" / "dense" / "slt_0.50" / "test" / "hypotheses_test.txt"
    hypotheses.write_text("".join(hypotheses.read_text().splitlines(keepends=True)[:25]))
    message = _refused(["report", str(tmp_path), "--paper", "none", "--claims"])
    _says(message, f"{hypotheses} has 25 lines", f"{tmp_path / 'seed0' / 'dense' / 'test' / 'references_test.txt'} has 40",
          "delete", "metrics.json and run the experiment again")
    assert not (tmp_path / "claims.md").exists()
    tally("bad_inputs")


def test_a_report_of_a_half_finished_experiment_names_the_runs_it_lacks(tmp_path, capsys, tally):
    _synthetic_experiment(tmp_path, BLEU)
    for run in ("seed2/dense/slt_0.50", "seed1/mp_0.50"):
        (tmp_path / run / "metrics.json").unlink()
    assert cli.main(["report", str(tmp_path), "--paper", "none"]) == 0
    line = "Not finished yet: 2 of 9 planned runs (seed 1: mp_0.50; seed 2: dense/slt_0.50)"
    assert line in (tmp_path / "results.md").read_text() and line in capsys.readouterr().out
    tally("bad_inputs")


def test_a_finished_experiment_has_no_such_line(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    assert cli.main(["report", str(tmp_path), "--paper", "none"]) == 0
    assert "Not finished" not in (tmp_path / "results.md").read_text()


# ----------------------------------------------------------------------------- reports: the folder and the options


def test_report_of_a_run_folder_names_its_experiment(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    message = _refused(["report", str(tmp_path / "seed0" / "dense")])
    _says(message, f"is inside the experiment folder {tmp_path}", f"lightning-slt report {tmp_path}")
    tally("bad_inputs")


def test_report_of_a_file_or_a_missing_path_is_named(tmp_path, tally):
    (tmp_path / "notes.txt").write_text("mine")
    _says(_refused(["report", str(tmp_path / "notes.txt")]), f"{tmp_path / 'notes.txt'} is a file, not an experiment folder")
    _says(_refused(["report", str(tmp_path / "absent")]), f"{tmp_path / 'absent'} does not exist")
    tally("bad_inputs", 2)


def test_report_with_an_unknown_paper_lists_the_known_ones(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    before = file_states(tmp_path)
    _says(_refused(["report", str(tmp_path), "--paper", "wmt99"]), "paper 'wmt99' is not one of", "wmt14_ende",
          "wmt14_enfr", "none")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_claims_take_the_paper_the_report_names(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    assert cli.main(["report", str(tmp_path), "--paper", "wmt14_enfr", "--claims"]) == 0
    assert "wmt14_enfr" in (tmp_path / "claims.md").read_text()


def test_a_hypothesis_file_that_is_not_utf8_is_named(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    hypotheses = tmp_path / "seed0" / "mp_0.50" / "test" / "hypotheses_test.txt"
    hypotheses.write_bytes(b"ein hund\n\xff\xfe kaputt\n")
    _says(_refused(["report", str(tmp_path), "--paper", "none", "--claims"]), f"{hypotheses} is not UTF-8 text",
          f"delete {tmp_path / 'seed0' / 'mp_0.50' / 'metrics.json'} and run the experiment again")
    assert not (tmp_path / "claims.md").exists()
    tally("bad_inputs")


def test_dense_from_a_folder_that_is_no_experiment_is_named_as_the_option(tmp_path, tally):
    _synthetic_experiment(tmp_path, BLEU)
    _says(_refused(["report", str(tmp_path), "--paper", "none", "--claims", "--dense-from", str(tmp_path / "none")]),
          f"--dense-from: {tmp_path / 'none'} holds no experiment.json")
    tally("bad_inputs")


def test_report_of_parts_none_of_which_started_says_so(tmp_path, tally):
    (tmp_path / "parts.json").write_text(json.dumps({"parts": ["p1", "p2"]}))
    _says(_refused(["report", str(tmp_path)]), "an experiment in parts (p1, p2), none of which has started yet",
          "--part=NAME")
    tally("bad_inputs")


def test_dense_from_a_folder_of_two_seeds_names_that_folder(tmp_path, tally):
    (tmp_path / "exp").mkdir()
    (tmp_path / "dense").mkdir()
    _synthetic_experiment(tmp_path / "exp", BLEU)
    _synthetic_experiment(tmp_path / "dense", BLEU, seeds=(0, 1), dense_bleu=(30.0, 30.4))
    message = _refused(["report", str(tmp_path / "exp"), "--paper", "none", "--claims", "--dense-from",
                        str(tmp_path / "dense")])
    _says(message, f"--dense-from {tmp_path / 'dense'}", "at least 3 seeds, got 2")
    tally("bad_inputs")


MANIFEST_CASES = {  # id: (experiment.json text, what the message says)
    "truncated": ('{"config": {"methods": ["mp", "sl', "is damaged, not valid JSON"),
    "a_list": ("[1, 2]", "holds a list, not the mapping"),
    "no_config": ('{"runs": ["dense"]}', "has no 'config'"),
    "methods_a_string": (None, "config.methods is 'mp', not a list of names"),
}


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_a_damaged_experiment_json_is_named_with_the_fix(case, tmp_path, tally):
    text, says = MANIFEST_CASES[case]
    _synthetic_experiment(tmp_path, BLEU)
    if text is None:
        _edit(tmp_path / "experiment.json", lambda d: d["config"].update(methods="mp"))
    else:
        (tmp_path / "experiment.json").write_text(text)
    before = file_states(tmp_path)
    _says(_refused(["report", str(tmp_path), "--paper", "none"]), str(tmp_path / "experiment.json"), says,
          "restore it from a backup")
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_a_damaged_parts_json_is_named_with_the_fix(tmp_path, tally):
    (tmp_path / "p1").mkdir()
    _synthetic_experiment(tmp_path / "p1", BLEU)
    (tmp_path / "parts.json").write_text('{"parts": ["p')
    before = file_states(tmp_path)
    _says(_refused(["report", str(tmp_path), "--paper", "none"]), str(tmp_path / "parts.json"), "is damaged",
          "run `lightning-slt experiment` again")
    assert file_states(tmp_path) == before
    tally("bad_inputs")
