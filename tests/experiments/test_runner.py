"""End to end: every method on a tiny model and 300 Multi30k pairs, resumable, reported; an
experiment in parts; one SLT round under 2-process DDP; W&B offline runs and report."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_slt.experiments import ExperimentConfig, plan, run_experiment
from lightning_slt.artifacts.ticket import read_ticket
from lightning_slt.experiments.config import METHOD_NAMES
from lightning_slt.export import load_ticket

from .wandb_files import logged_artifacts, runs_under

HERE = Path(__file__).parent
BASE = str(HERE / "tiny_base.yaml")
REPO_ROOT = HERE.parents[1]


def _config(output_dir, methods, targets=(0.5, 0.6, 0.8), **kwargs):
    return ExperimentConfig(base=[BASE], methods=list(methods), output_dir=str(output_dir), targets=list(targets), **kwargs)


@pytest.fixture(scope="module")
def all_methods(tmp_path_factory, data_root):
    config = _config(tmp_path_factory.mktemp("all") / "exp", METHOD_NAMES)
    run_experiment(config)
    return config


def _masks(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False).get("lightning_slt", {}).get("masks", {})


@pytest.mark.slow
def test_every_run_finished_once_with_its_lineage(all_methods):
    _, _, runs = plan(all_methods)
    root = Path(all_methods.output_dir) / "seed0"
    finished = {str(p.parent.relative_to(root)) for p in root.glob("**/metrics.json")}
    assert finished == {run.name for run in runs}
    for run in runs:  # trained once: one logger version, no second attempt
        assert [p.name for p in (root / run.name / "logs").iterdir()] == ["version_0"], run.name
        config = (root / run.name / "config.yaml").read_text()
        if run.parent:
            assert f"source: {root / run.parent / 'checkpoints' / 'last.ckpt'}" in config or run.kind == "random_mask"
        if run.weights_from and run.kind != "mp" or run.parent:
            assert f"source: {root / run.weights_from / 'checkpoints' / 'last.ckpt'}" in config, run.name
    lt = (root / "dense/lt_0.50/lt_0.60/config.yaml").read_text()
    assert "step: 0\n      source: " + str(root / "dense/checkpoints/last.ckpt") in lt


@pytest.mark.slow
def test_every_checkpoint_has_exactly_its_target_sparsity_and_masks_nest(all_methods):
    _, _, runs = plan(all_methods)
    root = Path(all_methods.output_dir) / "seed0"
    for run in runs:
        for ckpt in (root / run.name / "checkpoints").glob("*.ckpt"):
            masks = _masks(ckpt)
            if run.kind == "dense":
                assert masks == {}
                continue
            assert masks, ckpt
            for name, mask in masks.items():
                assert int((~mask).sum()) == round(run.sparsity * mask.numel()), (ckpt, name)
            weights = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
            assert all((weights[n][~m] == 0).all() for n, m in masks.items())
        if run.parent and run.kind not in ("random_mask",) and run.parent != "dense" and not run.parent.startswith("mp_"):
            parent = _masks(root / run.parent / "checkpoints" / "last.ckpt")
            child = _masks(root / run.name / "checkpoints" / "last.ckpt")
            assert all(not (child[n] & ~parent[n]).any() for n in parent), f"{run.name} not nested in {run.parent}"


@pytest.mark.slow
def test_report_has_one_row_per_method_and_sparsity(all_methods):
    out = Path(all_methods.output_dir)
    rows = list(csv.DictReader(open(out / "results.csv")))
    expected = {(m, s) for m in METHOD_NAMES for s in (0.0, 0.5, 0.6, 0.8)}
    expected -= {("mp_slt", 0.5)} - {("mp_slt", 0.5)}
    got = {(r["method"], float(r["sparsity"])) for r in rows}
    assert got == expected
    assert len(rows) == len(expected)
    table = (out / "results.md").read_text()
    assert table.count("\n| 80% |") == 1 and "SLT-MP BLEU" in table and "random sign TER" in table
    assert (out / "bleu_vs_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    for row in rows:
        assert float(row["measured_sparsity"]) == pytest.approx(float(row["sparsity"]), abs=1e-3)  # per-tensor rounding
        assert int(row["lineage_steps"]) >= int(row["steps"]) == 10


def test_bad_input_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        _config(tmp_path / "x", ["slt", "slt2"])
    with pytest.raises(ValueError, match="strictly increasing"):
        _config(tmp_path / "x", ["slt"], targets=(0.6, 0.5))
    with pytest.raises(ValueError, match="beyond the run's max_steps 10"):
        run_experiment(_config(tmp_path / "x", ["slt"], rewind_step=11))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_directory_holding_another_experiment_is_refused(all_methods, tmp_path):
    with pytest.raises(ValueError, match="holds a different experiment .*base_args"):
        run_experiment(_config(all_methods.output_dir, ["slt"], base_args=["--model.lr=0.001"]))


def _launch(config_path, env):
    return subprocess.Popen([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(config_path)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_experiment_killed_mid_run_resumes_to_the_same_results(tmp_path, data_root):
    env = {**os.environ, "LIGHTNING_SLT_DATA": str(data_root)}
    results = {}
    for label in ("whole", "killed"):
        config = tmp_path / f"{label}.yaml"
        config.write_text(f"base: [{BASE}]\nmethods: [slt]\ntargets: [0.5, 0.6]\noutput_dir: {tmp_path / label}\n")
        if label == "killed":
            process = _launch(config, env)
            marker = tmp_path / label / "seed0" / "dense" / "slt_0.50" / "checkpoints" / "last.ckpt"
            deadline = time.time() + 240
            while not marker.exists() and process.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert process.poll() is None, process.stderr.read()[-3000:]
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert not (marker.parent.parent / "metrics.json").exists()  # killed during the run
        finished = _launch(config, env)
        assert finished.wait(timeout=600) == 0, finished.stderr.read()[-3000:]
        rows = list(csv.DictReader(open(tmp_path / label / "results.csv")))
        results[label] = [{k: v for k, v in r.items() if "wall_time" not in k} for r in rows]
    assert results["whole"] == results["killed"]


@pytest.mark.slow
def test_a_resumed_run_counts_the_training_time_of_its_earlier_sittings(tmp_path, data_root):
    """Lightning's Timer keeps the training time in every checkpoint, over the sittings of a run,
    and the run's wall time is its record in last.ckpt. Here the dense run's last.ckpt says 1000 s
    more were spent; testing that run again from it (metrics.json deleted) reports 1000 s more."""
    config = _config(tmp_path / "exp", ["mp"], targets=[0.5])
    run_experiment(config)
    dense = tmp_path / "exp" / "seed0" / "dense"
    first = json.loads((dense / "metrics.json").read_text())["wall_time_s"]
    checkpoint = torch.load(dense / "checkpoints" / "last.ckpt", weights_only=True)
    trained = checkpoint["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert first == trained > 0
    checkpoint["callbacks"]["Timer"]["time_elapsed"]["train"] = trained + 1000.0
    torch.save(checkpoint, dense / "checkpoints" / "last.ckpt")
    (dense / "metrics.json").unlink()
    run_experiment(config)
    again = json.loads((dense / "metrics.json").read_text())["wall_time_s"]
    assert again == trained + 1000.0  # a fit with no step left adds nothing
    assert json.loads((dense.parent / "mp_0.50" / "metrics.json").read_text())["wall_time_s"] < 1000  # not resumed


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_part_that_reuses_an_earlier_one_trains_only_what_that_did_not(tmp_path, data_root):
    """Part p1 trains the SLT chain to 50 %; p2 (reuse p1) goes on to 60 %: dense and SLT 50 % are
    taken from p1 (the same files, hard-linked; no second training), only SLT 60 % trains, from
    p1's 50 % ticket. A reuse folder of other settings is refused before anything trains."""
    import json
    from pathlib import Path

    from lightning_slt.experiments import run_experiment

    base = str(Path(__file__).parent / "tiny_base.yaml")
    config = ExperimentConfig(base=[base], output_dir=str(tmp_path / "repro"), targets=[0.5, 0.6],
                              base_args=["--trainer.max_steps=6", "--trainer.val_check_interval=3"],
                              parts={"p1": {"methods": ["slt"], "method_targets": {"slt": [0.5]}},
                                     "p2": {"methods": ["slt"], "reuse": ["p1"]}})
    run_experiment(config)
    p1, p2 = tmp_path / "repro" / "p1" / "seed0", tmp_path / "repro" / "p2" / "seed0"
    for run in ("dense", "dense/slt_0.50"):
        for name in ("checkpoints/last.ckpt", "mask.pt" if run != "dense" else "config.yaml", "test/hypotheses_test.txt"):
            assert (p2 / run / name).stat().st_ino == (p1 / run / name).stat().st_ino, (run, name)
        assert json.loads((p2 / run / "metrics.json").read_text())["reused_from"] == str(p1 / run)
    assert not (p1 / "dense/slt_0.50/slt_0.60").exists()
    assert json.loads((p2 / "dense/slt_0.50/slt_0.60/metrics.json").read_text())["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert str(p2 / "dense/slt_0.50/checkpoints/last.ckpt") in (p2 / "dense/slt_0.50/slt_0.60/config.yaml").read_text()
    other = ExperimentConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "other"),
                                "base_args": ["--trainer.max_steps=8", "--trainer.val_check_interval=4"],
                                "parts": {}, "methods": ["slt"], "reuse": [str(tmp_path / "repro" / "p1")]})
    with pytest.raises(ValueError, match=r"reuse: .*p1 was trained with other settings \(base_config_sha256, "
                                         r"schedule differ\)"):
        run_experiment(other)
    assert not (tmp_path / "other" / "seed0").exists()
    table = (tmp_path / "repro" / "results.md").read_text()  # SLT 50 % from p1, 60 % from p2, each once
    assert "SLT: p1 + p2" in table and "| 60% |" in table


def torch_masks(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_slt_round_under_ddp_has_identical_masks_on_both_ranks(tmp_path, data_root):
    digests = tmp_path / "digests"
    digests.mkdir()
    ddp = tmp_path / "ddp.yaml"
    ddp.write_text(
        "trainer:\n  devices: 2\n  strategy: ddp_spawn\n  use_distributed_sampler: false\n"
        "  callbacks:\n    - class_path: tests.callbacks.tiny.MaskDigest\n"
        f"      init_args: {{out_dir: {digests}}}\n"
    )
    config = ExperimentConfig(base=[BASE, str(ddp)], methods=["slt"], targets=[0.5], output_dir=str(tmp_path / "exp"))
    run_experiment(config)
    # MaskDigest asserts agreement through the strategy on every rank and writes one file per rank
    assert sorted(p.name for p in digests.iterdir()) == ["rank0.txt", "rank1.txt"]
    assert (digests / "rank0.txt").read_text() == (digests / "rank1.txt").read_text()
    assert (tmp_path / "exp" / "seed0" / "dense" / "slt_0.50" / "metrics.json").exists()


@pytest.mark.slow
def test_offline_runs_and_report_reach_wandb_files(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = ExperimentConfig(base=[BASE], methods=["slt"], targets=[0.5], output_dir=str(tmp_path / "exp"),
                              wandb=True, wandb_project="lightning_slt_test", name="wandb-test")
    run_experiment(config)
    runs = {r["run"]["display_name"]: r for r in runs_under(tmp_path / "exp")}
    assert set(runs) == {"seed0/dense", "seed0/dense/slt_0.50", "report"}
    slt = runs["seed0/dense/slt_0.50"]
    assert slt["run"]["group"] == "wandb-test" and slt["run"]["job_type"] == "slt"
    assert slt["config"]["sparsity"] == 0.5 and slt["config"]["lineage"] == ["dense"]
    assert slt["config"]["mask_from"] == "dense" and slt["config"]["weights_from"] == "dense"
    keys = set().union(*slt["history"])
    assert {"train/loss", "val/bleu", "val/chrf", "val/ter", "sparsity/global", "params/remaining",
            "mask/jaccard_previous", "sign/agreement_rewind", "test/bleu"} <= keys
    assert any(k.startswith("sparsity/model.") for k in keys)  # per-layer sparsity
    assert [h["sparsity/global"] for h in slt["history"] if "sparsity/global" in h][-1] == 0.5
    report = runs["report"]
    assert report["run"]["job_type"] == "report"
    logged = {k: v for h in report["history"] for k, v in h.items()}  # nested keys are dotted
    assert logged["results._type"] == "table-file" and logged["results.nrows"] == 2  # dense + 50 %
    assert logged["bleu_vs_sparsity._type"] == "image-file" and logged["bleu_vs_sparsity.format"] == "png"
    # every run's best checkpoint is a ticket beside it, logged to its own W&B run as a model artifact
    artifacts = {record.name: (run_id, record) for run_id, record in logged_artifacts(tmp_path / "exp", expect=2)
                 if record.type == "model"}  # the report's Table is an artifact too
    assert set(artifacts) == {"wandb-test-seed0-dense", "wandb-test-seed0-dense-slt_0.50"}
    run_id, record = artifacts["wandb-test-seed0-dense-slt_0.50"]
    assert run_id == slt["run"]["id"] and set(record.aliases) == {"latest", "best"}
    metadata = json.loads(record.metadata)
    ticket_path = tmp_path / "exp" / "seed0" / "dense" / "slt_0.50" / "model.ticket"
    finished = json.loads((ticket_path.parent / "metrics.json").read_text())
    assert metadata["sparsity"] == read_ticket(ticket_path).extra["sparsity"] == finished["sparsity"] == 0.5
    assert metadata["lineage"] == ["dense"] and metadata["methods"] == ["slt"]
    assert metadata["test_bleu"] == finished["test"]["bleu"] and metadata["source_checkpoint"] == "best.ckpt"
    assert finished["ticket"]["file"] == ticket_path.stat().st_size
    assert load_ticket(ticket_path).hparams["d_model"] == 32
    assert os.environ["WANDB_MODE"] == "offline"


@pytest.mark.slow
def test_an_experiment_chain_under_fsdp2_passes_the_strategy_to_every_run(tmp_path, data_root):
    """`lightning-slt experiment` with conf/strategy/fsdp2.yaml in its base, 2 gloo processes: every rank
    walks the chain, every run's config.yaml holds ModelParallelStrategy, checkpoints are distributed
    folders, and the SLT round prunes exactly half of every matrix; rank 0 alone writes and shows the report."""
    import yaml

    from lightning_slt.artifacts import load_source

    repo = Path(__file__).resolve().parents[2]
    config = {"base": [str(repo / "tests/experiments/tiny_base.yaml"), str(repo / "conf/strategy/fsdp2.yaml")],
              "base_args": [f"--data.data_root={data_root}", f"--data.cache_dir={tmp_path / 'spm'}"],
              "methods": ["slt"], "targets": [0.5], "rewind_step": 1, "output_dir": str(tmp_path / "out")}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "lightning_slt.cli", "experiment", "--config", str(tmp_path / "exp.yaml")],
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-4000:]
    assert done.stdout.count("| 50% |") == 1  # the report shown once, by rank 0
    for run in ("dense", "dense/slt_0.50"):
        run_config = yaml.safe_load((tmp_path / "out/seed0" / run / "config.yaml").read_text())
        assert run_config["trainer"]["strategy"]["class_path"].endswith("ModelParallelStrategy"), run
        assert (tmp_path / "out/seed0" / run / "checkpoints/last.ckpt/.metadata").is_file(), run
    masks = load_source(tmp_path / "out/seed0/dense/slt_0.50/checkpoints/last.ckpt").masks
    assert masks and all(int((~m).sum()) == round(0.5 * m.numel()) for m in masks.values())
