"""The report of a finished experiment folder, read back from its runs' metrics.json: rows per
method, sparsity and seed, means and sds over seeds, the Table-1-shaped markdown, the chart, the
parts of an experiment in parts; damaged or foreign folders named with the fix."""

import csv
import json

import pytest

from lightning_slt.experiments.report import (
    CSV_FIELDS,
    collect,
    markdown_table,
    part_folders,
    planned_metrics,
    planned_parts,
    summarize,
    write_report,
)

from ._synthetic import _synthetic_experiment

BLEU = {"mp": 27.0, "slt": 29.0}  # dense: 30.0, 30.4, 29.8 over seeds 0, 1, 2


def test_collect_gives_each_method_its_dense_row_and_its_own_runs(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    methods, rows = collect(tmp_path)
    assert methods == ["mp", "slt"]
    assert [(r["method"], r["sparsity"], r["seed"], r["run"]) for r in rows[:4]] == [
        ("mp", 0.0, 0, "dense"), ("mp", 0.0, 1, "dense"), ("mp", 0.0, 2, "dense"), ("mp", 0.5, 0, "mp_0.50")]
    assert len(rows) == 12 and set(rows[0]) == set(CSV_FIELDS)
    slt = [r for r in rows if r["method"] == "slt" and r["sparsity"] == 0.5]
    assert [(r["test_bleu"], r["mask_from"], r["kind"]) for r in slt] == [(29.0, "dense", "slt")] * 3


def test_means_and_sds_over_seeds_and_the_markdown_table(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    methods, rows = collect(tmp_path)
    summary = summarize(rows)
    dense = summary[("mp", 0.0)]
    assert dense["n"] == 3 and dense["test_bleu"] == pytest.approx(30.0666667) and dense["test_bleu_sd"] == pytest.approx(0.305505)
    assert (summary[("slt", 0.5)]["test_bleu"], summary[("slt", 0.5)]["test_bleu_sd"]) == (29.0, 0.0)
    assert markdown_table(methods, summary) == (
        "| Sparsity | Memory | MP BLEU | MP TER | SLT BLEU | SLT TER |\n"
        "|---|---|---|---|---|---|\n"
        "| 0% | 1.0 MB | 30.1 ± 0.3 | 60.0 ± 0.0 | 30.1 ± 0.3 | 60.0 ± 0.0 |\n"
        "| 50% | 1.0 MB | 27.0 ± 0.0 | 60.0 ± 0.0 | 29.0 ± 0.0 | 60.0 ± 0.0 |\n")
    one_seed = summarize([dict(r, test_ter=None) for r in rows if r["seed"] == 0])
    assert markdown_table(["mp"], one_seed).splitlines()[2] == "| 0% | 1.0 MB | 30.0 | – |"  # one seed: no sd


def test_write_report_writes_the_csv_the_markdown_and_the_chart(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    paths = write_report(tmp_path, paper="wmt14_ende")
    assert paths == {"csv": tmp_path / "results.csv", "md": tmp_path / "results.md", "png": tmp_path / "bleu_vs_sparsity.png"}
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and list(rows[0]) == CSV_FIELDS
    text = paths["md"].read_text()
    assert text.startswith(f"# Results: {tmp_path.name}\n\nTest BLEU and TER [%] (sacreBLEU, detokenized), mean ± sd "
                           "over seeds [0, 1, 2]; memory = pruned matrices in CSC, as the paper's Table 1.\n\n")
    assert text.endswith("| 50% | 1.0 MB | 27.0 ± 0.0 | 60.0 ± 0.0 | 29.0 ± 0.0 | 60.0 ± 0.0 |\n")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_the_runs_of_the_current_plan_are_reported(tmp_path):
    _synthetic_experiment(tmp_path, BLEU)
    manifest = json.loads((tmp_path / "experiment.json").read_text())
    assert planned_metrics(tmp_path, {"config": {"seeds": [0]}}) is None  # a manifest of before plans were recorded
    assert planned_metrics(tmp_path, {**manifest, "config": {**manifest["config"], "seeds": [1], "dense_seeds": [4]}}) == [
        tmp_path / "seed1/dense/metrics.json", tmp_path / "seed1/mp_0.50/metrics.json",
        tmp_path / "seed1/dense/slt_0.50/metrics.json", tmp_path / "seed4/dense/metrics.json"]
    (tmp_path / "experiment.json").write_text(json.dumps({**manifest, "runs": ["dense", "mp_0.50"]}))  # slt planned no more
    methods, rows = collect(tmp_path)
    assert {r["run"] for r in rows} == {"dense", "mp_0.50"}


def test_foreign_or_damaged_folders_are_named_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no experiment.json: it is not an experiment folder \(give the "
                                                r"output_dir of `lightning-slt experiment`\)"):
        collect(tmp_path)
    _synthetic_experiment(tmp_path, BLEU)
    (tmp_path / "seed1" / "mp_0.50" / "metrics.json").write_text('{"run": ')
    with pytest.raises(ValueError, match=r"metrics.json is damaged, not valid JSON \(line 1: Expecting value\): delete "
                                         r"it and run the experiment again to evaluate that run anew"):
        collect(tmp_path)
    (tmp_path / "experiment.json").write_text("{")
    with pytest.raises(ValueError, match=r"experiment.json is damaged.*: restore it from a backup; the report needs its "
                                         r"list of methods and runs"):
        collect(tmp_path)


def test_the_parts_of_an_experiment_come_in_the_order_parts_json_plans(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "experiment.json").write_text("{}")
    assert part_folders(tmp_path) == [tmp_path / "a", tmp_path / "b"] and planned_parts(tmp_path) == []
    (tmp_path / "parts.json").write_text(json.dumps({"parts": ["b", "c", "a"]}))  # c planned, not run yet
    assert part_folders(tmp_path) == [tmp_path / "b", tmp_path / "a"] and planned_parts(tmp_path) == ["b", "c", "a"]
    assert part_folders(tmp_path / "a") == [tmp_path / "a"]  # a single experiment is its own only part
    with pytest.raises(FileNotFoundError, match="b/nothing does not exist; give the output_dir of `lightning-slt "
                                                "experiment`"):
        part_folders(tmp_path / "b" / "nothing")
    (tmp_path / "c").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no experiment.json and no parts with one"):
        part_folders(tmp_path / "c")


def test_a_users_metric_heads_the_table_and_every_logged_test_metric_is_a_column(tmp_path):
    from lightning_slt.experiments.report import csv_fields, headline_metric

    _synthetic_experiment(tmp_path, BLEU)
    manifest = json.loads((tmp_path / "experiment.json").read_text())
    manifest["config"]["monitor"] = "val/acc"
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))
    for path in tmp_path.rglob("metrics.json"):
        run = json.loads(path.read_text())
        run["test"], run["valid"] = {"acc": 90.0 + run["seed"], "loss": 0.25}, {"acc": 91.0}
        path.write_text(json.dumps(run))
    assert headline_metric(manifest["config"]) == "acc"
    methods, rows = collect(tmp_path)
    assert rows[0]["test_acc"] == 90.0 and rows[0]["valid_acc"] == 91.0 and "test_bleu" not in rows[0]
    assert csv_fields(rows, "acc")[5:8] == ["test_acc", "test_loss", "valid_acc"]
    assert markdown_table(methods, summarize(rows, "acc"), "acc").splitlines()[:3] == [
        "| Sparsity | Memory | MP acc | SLT acc |", "|---|---|---|---|",
        "| 0% | 1.0 MB | 91 ± 1 | 91 ± 1 |"]
    paths = write_report(tmp_path, wandb=False)
    assert "Test acc (as the module logs it)" in paths["md"].read_text()
    assert paths["csv"].read_text().splitlines()[0].split(",")[5:8] == ["test_acc", "test_loss", "valid_acc"]
