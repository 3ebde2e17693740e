"""The experiment folder: one process at a time, a report of the current plan only, targets that
name their runs uniquely, and damaged bookkeeping files said as such.

The race test runs real ``lightning-slt experiment`` processes on one folder; each process that
is refused (or takes over a dead one's lock) is one race of the suite's figures line. Every
other case is one bad input.
"""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_slt import cli
from lightning_slt.atomic import write_json
from lightning_slt.experiments import ExperimentConfig, plan, run_experiment
from lightning_slt.experiments.report import write_report
from lightning_slt.experiments.runner import _manifest

from .test_kills import TINY_EXPERIMENT_BASE, _env
from .tiny import REPO_ROOT, file_states

BASE = str(TINY_EXPERIMENT_BASE)


def _config(out: Path, **overrides) -> ExperimentConfig:
    return ExperimentConfig(**{"base": [BASE], "methods": ["slt"], "output_dir": str(out), "targets": [0.5], **overrides})


# ----------------------------------------------------------------------------- targets

TARGET_CASES = {  # id: (config overrides, what the message says)
    "targets_0.9_and_0.904": (dict(targets=[0.5, 0.9, 0.904]),
                              "targets[1] = 0.9 and targets[2] = 0.904 would both be run folders named 0.90"),
    "targets_0.5_and_0.501": (dict(targets=[0.5, 0.501]),
                              "targets[0] = 0.5 and targets[1] = 0.501 would both be run folders named 0.50"),
    "slt_mp_switch_and_a_target": (dict(methods=["slt_mp"], targets=[0.601, 0.8]),
                                   "targets[0] = 0.601 and slt_mp_switch = 0.6 would both be run folders named 0.60"),
    "mp_slt_source_and_a_target": (dict(methods=["mp_slt"], targets=[0.598, 0.8]),
                                   "targets[0] = 0.598 and mp_slt_source = 0.6 would both be run folders named 0.60"),
    "slt_mp_targets_below_the_switch": (dict(methods=["slt_mp"], targets=[0.3, 0.7]),
                                        "targets [0.3] are below slt_mp_switch=0.6"),
    "slt_mp_target_between_0.5_and_the_switch": (dict(methods=["slt_mp"], targets=[0.5, 0.55, 0.8]),
                                                 "targets [0.55] are below slt_mp_switch=0.6"),
    "slt_mp_and_mp_slt_below_both": (dict(methods=["slt_mp", "mp_slt"], targets=[0.4, 0.8]),
                                     "targets [0.4] are below slt_mp_switch=0.6"),
}


@pytest.mark.parametrize("case", TARGET_CASES)
def test_targets_that_would_be_dropped_are_refused(case, tmp_path, tally):
    overrides, says = TARGET_CASES[case]
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps({"base": [BASE], "methods": ["slt"], "output_dir": str(tmp_path / "out"), **overrides}))
    with pytest.raises(SystemExit) as info:
        cli.main(["experiment", "--config", str(path)])
    message = str(info.value.code)
    assert says in message, message
    assert "would never be trained" in message or "no run of this experiment would train them" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]
    tally("bad_inputs")


def test_slt_mp_targets_below_the_switch_are_fine_when_another_method_trains_them(tmp_path):
    _config(tmp_path / "out", methods=["slt", "slt_mp"], targets=[0.3, 0.5, 0.8])  # no error


# ----------------------------------------------------------------------------- the report


def _metrics(run: str, sparsity: float, bleu: float) -> dict:
    return {"run": run, "kind": "slt" if sparsity else "dense", "seed": 0, "methods": ["slt"], "reported_in": ["slt"],
            "sparsity_target": sparsity, "sparsity": sparsity, "parameters": 100, "prunable_parameters": 90,
            "remaining_parameters": 100 - round(90 * sparsity), "dense_mb": 0.1, "sparse_mb": 0.1,
            "valid": {"bleu": bleu}, "test": {"bleu": bleu, "chrf": 1.0, "ter": 1.0}, "steps": 10, "wall_time_s": 1.0,
            "lineage_steps": 10, "lineage_wall_time_s": 1.0, "mask_from": None, "weights_from": None}


def _folder_of_two_plans(out: Path) -> None:
    """Runs of an earlier plan (targets 0.3, 0.8) and of the current one (0.5, 0.8), as the runner
    leaves them: the current plan's experiment.json lists its own runs."""
    config = _config(out, targets=[0.5, 0.8])
    base, schedule, runs = plan(config)
    write_json(out / "experiment.json", {**_manifest(config, base, schedule), "config": config.to_dict(),
                                         "runs": [run.name for run in runs]})
    for run, sparsity, bleu in [("dense", 0.0, 30.0), ("dense/slt_0.30", 0.3, 10.0), ("dense/slt_0.30/slt_0.80", 0.8, 5.0),
                                ("dense/slt_0.50", 0.5, 20.0), ("dense/slt_0.50/slt_0.80", 0.8, 15.0)]:
        write_json(out / "seed0" / run / "metrics.json", _metrics(run, sparsity, bleu))


def test_report_shows_the_current_plan_only(tmp_path, tally):
    out = tmp_path / "exp"
    _folder_of_two_plans(out)
    runs_before = file_states(out / "seed0")
    paths = write_report(out, paper=None)
    with open(paths["csv"]) as handle:
        rows = [(row["run"], row["test_bleu"]) for row in csv.DictReader(handle)]
    assert rows == [("dense", "30.0"), ("dense/slt_0.50", "20.0"), ("dense/slt_0.50/slt_0.80", "15.0")]
    table = paths["md"].read_text()
    assert "| 80% | 0.1 MB | 15.0 | 1.0 |" in table  # one seed: not "10.0 ± 7.1", the mean of two chains
    assert file_states(out / "seed0") == runs_before
    tally("bad_inputs")


DAMAGED = {  # id: (file, command, what the message says)
    "experiment_json_for_experiment": ("experiment.json", "experiment", "restore the file from a backup"),
    "experiment_json_for_report": ("experiment.json", "report", "restore it from a backup"),
    "metrics_json_for_report": ("seed0/dense/slt_0.50/metrics.json", "report", "delete it and run the experiment again"),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_bookkeeping_file_is_named_with_the_fix(case, tmp_path, tally):
    name, command, fix = DAMAGED[case]
    out = tmp_path / "exp"
    _folder_of_two_plans(out)
    damaged = out / name
    damaged.write_bytes(damaged.read_bytes()[:-40])  # cut short, as by a full disk or a bad copy
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"base": [BASE], "methods": ["slt"], "targets": [0.5, 0.8], "output_dir": str(out)}))
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["experiment", "--config", str(config)] if command == "experiment" else ["report", str(out)])
    message = str(info.value.code)
    assert f"{damaged} is damaged, not valid JSON (line " in message and fix in message, message
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def test_report_of_a_folder_that_is_no_experiment_is_refused(tmp_path, tally):
    (tmp_path / "notes.txt").write_text("mine")
    before = file_states(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["report", str(tmp_path)])
    assert f"{tmp_path} holds no experiment.json and no parts with one: it is not an experiment folder" in str(
        info.value.code)
    assert file_states(tmp_path) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- two processes, one folder


def _experiment(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability._chain_run", str(config), *args], cwd=REPO_ROOT,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, *processes: subprocess.Popen) -> None:
    """Until ``path`` exists; fails (with their stderr) if every process ended first. No timing is asserted."""
    while not path.exists():
        if all(p.poll() is not None for p in processes):
            pytest.fail("\n".join(p.stderr.read()[-2000:] for p in processes))
        time.sleep(0.05)


def _refused(process: subprocess.Popen, holder: int) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    assert (f"is in use by another `lightning-slt experiment` (pid {holder} on host {socket.gethostname()}" in stderr
            and "wait for it to finish (or stop it), or choose another output_dir" in stderr), stderr[-3000:]


def test_a_folder_another_process_is_starting_is_left_to_the_lock(tmp_path):
    """Between taking the lock and renaming its manifest into place, the first process's folder
    holds only experiment.lock and the manifest's temporary file: a second process started then
    must reach the lock (and be refused naming its holder), not call the folder foreign."""
    from lightning_slt.experiments.paths import ExperimentPaths
    from lightning_slt.experiments.runner import _check_manifest

    MANIFEST = ExperimentPaths(tmp_path).manifest.name

    (tmp_path / "experiment.lock").write_text("")
    (tmp_path / f".{MANIFEST}.k2x9_a.tmp").write_text("{")
    _check_manifest(tmp_path, {"schedule": {}})  # no error: the lock decides
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no experiment.json: it is not an experiment folder"):
        _check_manifest(tmp_path, {"schedule": {}})


@pytest.mark.slow
def test_a_second_process_on_the_folder_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, spm_cache, tally):
    out = tmp_path / "exp"
    config = tmp_path / "exp.yaml"
    config.write_text(f"base: [{BASE}]\nmethods: [slt]\ntargets: [0.5]\noutput_dir: {out}\n"
                      f"base_args: ['--data.cache_dir={spm_cache}']\n")
    dense, slt = out / "seed0" / "dense", out / "seed0" / "dense" / "slt_0.50"

    # 1. Two processes started together: one takes the folder, the other is refused naming it.
    go = tmp_path / "never"
    first, second = (_experiment(config, "--pause-in", f"dense:3:{go}") for _ in range(2))
    _wait_for(Path(f"{go}.paused"), first, second)
    winner = int(Path(f"{go}.paused").read_text())
    loser = second if winner == first.pid else first
    _refused(loser, winner)

    # 2. The holder dies (SIGKILL, mid-run): the lock is free, and the next process says whose it took over.
    holder = first if winner == first.pid else second
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    go = tmp_path / "go"
    third = _experiment(config, "--pause-in", f"dense/slt_0.50:4:{go}")
    _wait_for(Path(f"{go}.paused"), third)
    finished_dense = file_states(dense / "metrics.json", dense / "mask.pt", dense / "checkpoints")

    # 3. A process started while the third one runs is refused and changes nothing.
    before = file_states(out)
    _refused(_experiment(config), third.pid)
    assert file_states(out) == before

    go.write_text("")
    _, stderr = third.communicate(timeout=600)
    assert third.returncode == 0, stderr[-3000:]
    assert f"took over the lock of an ended process (pid {winner} on host {socket.gethostname()}" in stderr
    assert file_states(dense / "metrics.json", dense / "mask.pt", dense / "checkpoints") == finished_dense
    for run in (dense, slt):  # the first's results, whole: every run trained to its end and reported
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
        assert json.loads((run / "metrics.json").read_text())["steps"] == 10
    with open(out / "results.csv") as handle:
        assert [row["run"] for row in csv.DictReader(handle)] == ["dense", "dense/slt_0.50"]
    assert (out / "experiment.lock").read_text() == ""  # released
    tally("races", 3)


# ----------------------------------------------------------------------------- training text


@pytest.mark.slow
def test_an_experiment_whose_training_text_changed_is_refused_at_its_next_run(tmp_path, data_root, spm_cache, tally):
    """Before: the later rounds trained with the new tokenizer on masks and θk of runs with the old
    one, and the table mixed them, exit 0. Now the one vocabulary check of every source refuses."""
    from lightning_slt.data import read_parallel, resolve_corpus

    src, tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root))
    files = [tmp_path / "train.en", tmp_path / "train.de"]
    for path, lines in zip(files, (src[:300], tgt[:300])):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    settings = dict(base_args=[f"--data.train_files=[{files[0]},{files[1]}]", f"--data.cache_dir={spm_cache}",
                               "--data.train_subset=null"])
    run_experiment(_config(tmp_path / "exp", **settings))
    files[1].write_text("".join(line.upper() + "\n" for line in tgt[:300]), encoding="utf-8")  # other pieces
    finished = file_states(tmp_path / "exp" / "seed0")
    with pytest.raises(ValueError) as info:
        run_experiment(_config(tmp_path / "exp", targets=[0.5, 0.6], **settings))
    message = str(info.value)
    assert f"pruning source {tmp_path / 'exp/seed0/dense/slt_0.50/checkpoints/last.ckpt'}" in message
    assert "was trained with another sentencepiece model" in message
    assert not (tmp_path / "exp/seed0/dense/slt_0.50/slt_0.60/checkpoints").exists()  # no step trained
    assert {k: v for k, v in file_states(tmp_path / "exp" / "seed0").items() if "slt_0.60" not in k} == finished
    tally("bad_inputs")
