"""ExperimentPaths / RunPaths: the one place that spells an experiment folder's layout."""

from pathlib import Path

from lightning_slt.experiments import ExperimentPaths, RunPaths, run_paths


def test_every_location_of_an_experiment_folder():
    folder = ExperimentPaths.of("out/exp")
    assert folder.root == Path("out/exp")
    assert (folder.manifest, folder.parts, folder.lock) == (
        Path("out/exp/experiment.json"), Path("out/exp/parts.json"), Path("out/exp/experiment.lock"))
    assert (folder.results_csv, folder.results_md, folder.plot, folder.claims) == (
        Path("out/exp/results.csv"), Path("out/exp/results.md"), Path("out/exp/bleu_vs_sparsity.png"),
        Path("out/exp/claims.md"))
    assert folder.part("p1").manifest == Path("out/exp/p1/experiment.json")


def test_every_location_of_a_run_named_by_its_lineage():
    run = ExperimentPaths.of("out/exp").run(1, "dense/slt_0.50")
    assert run == RunPaths(Path("out/exp/seed1/dense/slt_0.50")) == run_paths("out/exp", 1, "dense/slt_0.50")
    assert (run.config, run.last, run.best, run.metrics) == (
        Path("out/exp/seed1/dense/slt_0.50/config.yaml"), Path("out/exp/seed1/dense/slt_0.50/checkpoints/last.ckpt"),
        Path("out/exp/seed1/dense/slt_0.50/checkpoints/best.ckpt"), Path("out/exp/seed1/dense/slt_0.50/metrics.json"))
    assert (run.mask.name, run.theta_k.name, run.ticket.name) == ("mask.pt", "theta_k.pt", "model.ticket")
    assert (run.hypotheses, run.references) == (Path("out/exp/seed1/dense/slt_0.50/test/hypotheses_test.txt"),
                                                Path("out/exp/seed1/dense/slt_0.50/test/references_test.txt"))


def test_all_metrics_finds_every_finished_run_of_any_seed(tmp_path):
    folder = ExperimentPaths(tmp_path)
    for seed, name in ((0, "dense"), (0, "dense/slt_0.50"), (2, "mp_0.80")):
        folder.run(seed, name).metrics.parent.mkdir(parents=True)
        folder.run(seed, name).metrics.write_text("{}")
    folder.run(0, "dense/lt_0.50").root.mkdir(parents=True)  # not finished: no metrics.json
    assert [p.relative_to(tmp_path).as_posix() for p in folder.all_metrics()] == [
        "seed0/dense/metrics.json", "seed0/dense/slt_0.50/metrics.json", "seed2/mp_0.80/metrics.json"]
