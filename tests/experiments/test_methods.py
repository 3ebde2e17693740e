"""The methods registry, proven by its one variant: SLT rewound every round to the dense run's θk
(Frankle et al. 2019), an entry of lightning_slt/experiments/methods.py and nothing else."""

from pathlib import Path

import yaml

from lightning_slt.experiments import ExperimentConfig, Schedule, build_runs, run_experiment
from lightning_slt.experiments.methods import METHOD_NAMES, METHODS, label, run_callbacks


def method_rows(runs, method):
    """The run reported at each sparsity in ``method``'s column (0 % is the dense run)."""
    return dict(sorted((run.sparsity, run) for run in runs if method in run.reported_in))

BASE = str(Path(__file__).parent / "tiny_base.yaml")


def _plan(methods, targets=(0.5, 0.6, 0.8)):
    config = ExperimentConfig(base=["b.yaml"], methods=list(methods), output_dir="out", targets=list(targets))
    schedule = Schedule.resolve(config, 100)
    return schedule, {run.name: run for run in build_runs(config, schedule)}


def test_every_entry_has_a_label_and_the_paper_methods_keep_their_order():
    assert METHOD_NAMES == ("mp", "lt", "slt", "clt", "slt_mp", "mp_slt", "random_mask", "random_reinit", "random_sign")
    assert set(METHODS) == {*METHOD_NAMES, "slt_dense_k", "mp_lineage"} and all(METHODS[m].label for m in METHODS)
    assert label("slt_dense_k") == "SLT (θk of dense)" and label("gone") == "gone"  # an old folder's method


def test_slt_dense_k_rewinds_every_round_to_the_dense_theta_k():
    schedule, runs = _plan(["slt", "slt_dense_k"])
    assert runs["dense/slt_0.50"].methods == ["slt", "slt_dense_k"]  # round 1 is SLT's round 1: trained once
    rows = {s: r.name for s, r in method_rows(list(runs.values()), "slt_dense_k").items()}
    assert rows == {0.0: "dense", 0.5: "dense/slt_0.50", 0.6: "dense/slt_0.50/slt_dense_k_0.60",
                    0.8: "dense/slt_0.50/slt_dense_k_0.60/slt_dense_k_0.80"}
    ckpt = {name: f"{name}/last.ckpt" for name in runs}
    for name in ("dense/slt_0.50/slt_dense_k_0.60", "dense/slt_0.50/slt_dense_k_0.60/slt_dense_k_0.80"):
        run = runs[name]
        mask, rewind = (c.to_config() for c in run_callbacks(run, ckpt, schedule, 0))
        assert mask == {"class_path": "lightning_slt.callbacks.ConvergedMask",
                        "init_args": {"source": f"{run.parent}/last.ckpt", "sparsity": run.sparsity}}
        assert rewind == {"class_path": "lightning_slt.callbacks.WeightRewind",
                          "init_args": {"step": schedule.rewind_step, "source": "dense/last.ckpt"}}
    slt = runs["dense/slt_0.50/slt_0.60"]  # SLT's own round 2, for contrast: θk of its parent
    assert run_callbacks(slt, ckpt, schedule, 0)[1].init_args["source"] == "dense/slt_0.50/last.ckpt"


def test_adding_the_variant_leaves_the_other_methods_runs_as_they_were():
    _, alone = _plan(METHOD_NAMES)
    _, together = _plan([*METHOD_NAMES, "slt_dense_k"])
    assert {name for name in together if "slt_dense_k" not in name} == set(alone)
    for name, run in alone.items():
        assert (together[name].kind, together[name].parent, together[name].weights_from) == (
            run.kind, run.parent, run.weights_from)


def test_slt_dense_k_trains_and_reports_its_column(tmp_path, data_root):
    config = ExperimentConfig(base=[BASE], methods=["slt_dense_k"], output_dir=str(tmp_path / "exp"), targets=[0.5, 0.6])
    out = run_experiment(config)
    root = out / "seed0"
    written = yaml.safe_load((root / "dense/slt_0.50/slt_dense_k_0.60/config.yaml").read_text())
    rewind = [c["init_args"] for c in written["trainer"]["callbacks"] if c["class_path"].endswith("WeightRewind")]
    assert rewind == [{"step": 1, "source": str(root / "dense/checkpoints/last.ckpt")}]
    assert (root / "dense/slt_0.50/slt_dense_k_0.60/metrics.json").is_file()
    assert "| SLT (θk of dense) BLEU |" in (out / "results.md").read_text()
