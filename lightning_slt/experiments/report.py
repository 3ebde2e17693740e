"""Results of an experiment directory: results.csv, a Table-1-shaped results.md, a metric-vs-
sparsity plot, and (optionally) a W&B Table and chart.

Every figure is read back from the runs' ``metrics.json``; means and standard deviations are
over seeds, as the paper averages two runs. The headline metric is the experiment's (its
``monitor`` without the stage prefix): BLEU and TER for our model, as the paper's tables; for a
user's module its own metric, with every number its ``test_step`` logged in results.csv.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from importlib import resources
from pathlib import Path

from lightning_slt.atomic import read_json, write_bytes, write_text

from .config import metric_name
from .methods import label, shows
from .paths import ExperimentPaths, experiment_above

CSV_FIELDS = [
    "method", "sparsity", "seed", "run", "kind", "test_bleu", "test_chrf", "test_ter", "valid_bleu",
    "measured_sparsity", "sparse_mb", "remaining_parameters", "steps", "wall_time_s", "lineage_steps",
    "lineage_wall_time_s", "mask_from", "weights_from",
]
BLEU = "bleu"  # our model's headline metric, and the paper's


def headline_metric(manifest_config: dict) -> str:
    """The experiment's headline metric (``bleu`` for folders written before it was configurable)."""
    return metric_name(manifest_config.get("monitor", "val/bleu"))


def csv_fields(rows: list[dict], metric: str) -> list[str]:
    """results.csv's columns: ``CSV_FIELDS`` for BLEU experiments, else every test and valid metric
    the runs logged in place of BLEU/chrF/TER."""
    if metric == BLEU:
        return list(CSV_FIELDS)
    logged = list(dict.fromkeys(key for row in rows for key in row if key.startswith(("test_", "valid_"))))
    start = CSV_FIELDS.index("test_bleu")
    return CSV_FIELDS[:start] + logged + CSV_FIELDS[CSV_FIELDS.index("valid_bleu") + 1:]


def paper_results() -> dict:
    """Tables 1 (WMT14 En-De) and 2 (En-Fr) of the paper, shipped with the package."""
    return json.loads(resources.files("lightning_slt.experiments").joinpath("paper_results.json").read_text())


# -- what reports read, checked where they read it ---------------------------------------------------

MANIFEST_FIX = "restore it from a backup; the report needs its list of methods and runs"
METRICS_FIX = ("delete it and run the experiment again to evaluate that run anew (its checkpoints are kept; nothing "
               "is trained again), or restore it if it was edited")


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _integers(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


KINDS = {  # what a field must be: (said as, check)
    "name": ("a name", lambda value: isinstance(value, str)),
    "name or null": ("a name or null", lambda value: value is None or isinstance(value, str)),
    "names": ("a list of names", _names),
    "integer": ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "integers": ("a list of integers", _integers),
    "number": ("a finite number", _finite),
    "number or null": ("a finite number", lambda value: value is None or _finite(value)),
    "fraction": ("a sparsity in [0, 1)", lambda value: _finite(value) and 0 <= value < 1),
    "mapping": ("a mapping", lambda value: isinstance(value, dict)),
}
METRICS_FIELDS = {  # what the report reads of a run's metrics.json
    "run": "name", "kind": "name", "seed": "integer", "reported_in": "names", "sparsity_target": "fraction",
    "sparsity": "number", "sparse_mb": "number", "remaining_parameters": "number", "steps": "number",
    "wall_time_s": "number", "lineage_steps": "number", "lineage_wall_time_s": "number", "mask_from": "name or null",
    "weights_from": "name or null", "valid": "mapping", "test": "mapping",
}


def _check_fields(path: Path, data: dict, fields: dict[str, str], fix: str, prefix: str = "") -> None:
    for key, kind in fields.items():
        said, check = KINDS[kind]
        if key not in data:
            held = ", ".join(prefix + k for k in fields)
            raise ValueError(f"{path} has no {prefix + key!r} (it holds {held}); {fix}")
        if not check(data[key]):
            raise ValueError(f"{path}: {prefix + key} is {data[key]!r}, not {said}; {fix}")


def _read_mapping(path: Path, what: str, fix: str) -> dict:
    try:
        data = read_json(path)
    except ValueError as err:
        raise ValueError(f"{err}: {fix}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {'a list' if isinstance(data, list) else repr(data)}, not {what}; {fix}")
    return data


def refuse_folder_at(path: Path) -> None:
    """A report file's place taken by a folder (its write would fail only after the others)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, but the report writes its file {path.name} there; move it away")


def read_manifest(folder: str | Path) -> dict:
    """An experiment folder's experiment.json, with what reports read of it checked: its methods,
    seeds and planned runs."""
    path = ExperimentPaths.of(folder).manifest
    manifest = _read_mapping(path, "the mapping of an experiment's settings", MANIFEST_FIX)
    _check_fields(path, manifest, {"config": "mapping"}, MANIFEST_FIX)
    _check_fields(path, manifest["config"], {"methods": "names"}, MANIFEST_FIX, "config.")
    # seeds name the planned runs' folders (with runs; a manifest of before plans were recorded may lack both)
    seeds = {key: "integers" for key in ("seeds", "dense_seeds") if key in manifest["config"] or (
        key == "seeds" and "runs" in manifest)}
    _check_fields(path, manifest["config"], seeds, MANIFEST_FIX, "config.")
    _check_fields(path, manifest, {"runs": "names"} if "runs" in manifest else {}, MANIFEST_FIX)
    return manifest


def read_metrics(path: Path, root: Path, metric: str = "bleu") -> dict:
    """A finished run's metrics.json under the experiment folder ``root``, checked: every field
    the report reads present and of its type, every figure a finite number (the headline
    ``metric``, and for BLEU chrF and TER, may be null: shown as "–"), and the run and seed it
    names those of its folder (a copy of another run's file would count that run twice)."""
    run = _read_mapping(path, "the mapping of a run's figures", METRICS_FIX)
    _check_fields(path, run, METRICS_FIELDS, METRICS_FIX)
    headline = {"bleu", "chrf", "ter"} if metric == BLEU else {metric}
    for stage in ("valid", "test"):
        for key, value in run[stage].items():
            if key in headline or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                _check_fields(path, run[stage], {key: "number or null"}, METRICS_FIX, f"{stage}.")
    seed, *lineage = path.parent.relative_to(root).parts
    if (f"seed{run['seed']}", run["run"]) != (seed, "/".join(lineage)):
        raise ValueError(f"{path} says it is run {run['run']!r} of seed {run['seed']}, but it lies in "
                         f"{seed}/{'/'.join(lineage)}: a copy of another run's file would count that run twice; "
                         f"{METRICS_FIX}")
    return run


def collect(output_dir: str | Path) -> tuple[list[str], list[dict]]:
    """The experiment's methods and one row per (method, sparsity, seed) from finished runs."""
    folder = ExperimentPaths.of(output_dir)
    if not folder.manifest.is_file():
        raise FileNotFoundError(f"{output_dir} holds no experiment.json: it is not an experiment folder "
                                "(give the output_dir of `lightning-slt experiment`)")
    manifest = read_manifest(folder.root)
    metric = headline_metric(manifest["config"])
    runs = [read_metrics(path, folder.root, metric) for path in _metrics_files(folder.root, manifest)]
    methods = list(manifest["config"]["methods"])
    for run in runs:  # and the chain a control trained where its method is not run (a part's SLT rounds)
        methods += [m for m in run["reported_in"] if m not in methods]
    rows = [_row(method, run, metric) for method in methods for run in runs
            if shows(method, run, methods, manifest["config"])]
    rows.sort(key=lambda r: (methods.index(r["method"]), r["sparsity"], r["seed"]))
    return methods, rows


def planned_runs(manifest: dict) -> list[tuple[int, str]] | None:
    """(seed, run) of every run of the experiment's current plan (each seed's runs, the dense run
    of each dense-only seed), finished or not; None for a manifest written before plans were
    recorded."""
    if "runs" not in manifest:
        return None
    config = manifest["config"]
    return ([(seed, run) for seed in config["seeds"] for run in manifest["runs"]]
            + [(seed, "dense") for seed in config.get("dense_seeds", [])])


def planned_metrics(output_dir: Path, manifest: dict) -> list[Path] | None:
    """The metrics.json of every run of the experiment's current plan (``planned_runs``)."""
    runs = planned_runs(manifest)
    folder = ExperimentPaths.of(output_dir)
    return None if runs is None else [folder.run(seed, run).metrics for seed, run in runs]


def unfinished_runs(output_dir: str | Path, manifest: dict) -> list[tuple[int, str]]:
    """(seed, run) of the planned runs that have no metrics.json yet ([] for an old manifest)."""
    folder = ExperimentPaths.of(output_dir)
    return [(seed, run) for seed, run in planned_runs(manifest) or [] if not folder.run(seed, run).metrics.is_file()]


def _metrics_files(output_dir: Path, manifest: dict) -> list[Path]:
    """The finished runs of the experiment's current plan: not those of an earlier invocation with
    other targets, whose rows at a shared sparsity would be averaged with these as if they were
    seeds. A manifest written before plans were recorded lists no runs: then every run found."""
    paths = planned_metrics(output_dir, manifest)
    if paths is None:
        return ExperimentPaths.of(output_dir).all_metrics()
    return [path for path in paths if path.is_file()]


def _row(method: str, run: dict, metric: str = BLEU) -> dict:
    test, valid = run.get("test") or {}, run.get("valid") or {}
    if metric == BLEU:
        figures = {"test_bleu": test.get("bleu"), "test_chrf": test.get("chrf"), "test_ter": test.get("ter"),
                   "valid_bleu": valid.get("bleu")}
    else:  # a user's metrics: every number its test_step logged, and the monitored one in validation
        figures = {f"test_{name}": value for name, value in test.items() if isinstance(value, (int, float))}
        figures[f"test_{metric}"] = test.get(metric)
        figures[f"valid_{metric}"] = valid.get(metric)
    return {
        "method": method, "sparsity": run["sparsity_target"], "seed": run["seed"], "run": run["run"], "kind": run["kind"],
        **figures, "measured_sparsity": run["sparsity"], "sparse_mb": run["sparse_mb"],
        "remaining_parameters": run["remaining_parameters"], "steps": run["steps"], "wall_time_s": run["wall_time_s"],
        "lineage_steps": run["lineage_steps"], "lineage_wall_time_s": run["lineage_wall_time_s"],
        "mask_from": run["mask_from"], "weights_from": run["weights_from"],
    }


def summarize(rows: list[dict], metric: str = BLEU) -> dict[tuple[str, float], dict]:
    """Mean and sd over seeds of the test metrics (BLEU/TER/chrF for ours) and memory per (method, sparsity)."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["sparsity"]), []).append(row)
    figures = ["test_bleu", "test_ter", "test_chrf"] if metric == BLEU else [f"test_{metric}"]
    out = {}
    for key, group in groups.items():
        out[key] = {"n": len(group)}
        for field in (*figures, "sparse_mb", "lineage_steps"):
            values = [r[field] for r in group if r.get(field) is not None]
            out[key][field] = statistics.fmean(values) if values else None
            out[key][field + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def _cell(stats: dict | None, field: str) -> str:
    if not stats or stats.get(field) is None:
        return "–"
    sd = stats[field + "_sd"]
    if field in ("test_bleu", "test_ter", "test_chrf"):
        return f"{stats[field]:.1f}" + (f" ± {sd:.1f}" if stats["n"] > 1 else "")
    return f"{stats[field]:.4g}" + (f" ± {sd:.2g}" if stats["n"] > 1 else "")  # a user's metric: any scale


def markdown_table(methods: list[str], summary: dict, metric: str = BLEU) -> str:
    """Sparsity rows, method columns (BLEU and TER, or the user's metric), memory: shaped like the
    paper's Table 1."""
    sparsities = sorted({s for _, s in summary})
    columns = {"BLEU": "test_bleu", "TER": "test_ter"} if metric == BLEU else {metric: f"test_{metric}"}
    header = ["Sparsity", "Memory"] + [f"{label(m)} {x}" for m in methods for x in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sparsity in sparsities:
        stats = [summary.get((m, sparsity)) for m in methods]
        memory = next((s["sparse_mb"] for s in stats if s and s.get("sparse_mb") is not None), None)
        cells = [f"{sparsity:.0%}", _megabytes(memory)]
        for s in stats:
            cells += [_cell(s, field) for field in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _megabytes(memory: float | None) -> str:
    if memory is None:
        return "–"
    return f"{memory:.1f} MB" if memory >= 0.1 else f"{memory * 1024:.1f} KB"  # a small model's table


def plot(methods: list[str], summary: dict, path: Path, paper: str | None = "wmt14_ende", metric: str = BLEU) -> None:
    """The metric vs sparsity, one line per method; dashed (BLEU only): the paper's numbers for the
    same methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    reference = paper_results().get(paper, {}).get("methods", {}) if paper and metric == BLEU else {}
    field = f"test_{metric}"
    for i, method in enumerate(methods):
        points = sorted((s, v[field]) for (m, s), v in summary.items() if m == method and v.get(field) is not None)
        if points:
            ax.plot([100 * s for s, _ in points], [b for _, b in points], marker="o", color=f"C{i}", label=label(method))
        if method in reference:
            ref = sorted((float(s), b) for s, b in reference[method]["bleu"].items())
            ax.plot([100 * s for s, _ in ref], [b for _, b in ref], linestyle="--", color=f"C{i}", alpha=0.6,
                    label=f"{label(method)} (paper, {paper})")
    ax.set_xlabel("sparsity [%]")
    ax.set_ylabel("test BLEU [%]" if metric == BLEU else f"test {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def part_folders(folder: str | Path) -> list[Path]:
    """An experiment folder itself, or the folders of its parts (``ExperimentConfig.parts``), in
    the order its parts.json gives, else by name."""
    paths = ExperimentPaths.of(folder)
    if paths.manifest.is_file():
        return [paths.root]
    if not paths.root.exists():
        raise FileNotFoundError(f"{folder} does not exist; give the output_dir of `lightning-slt experiment`")
    if paths.root.is_file():
        raise FileNotFoundError(f"{folder} is a file, not an experiment folder; give the folder that holds "
                                "experiment.json (the output_dir of `lightning-slt experiment`)")
    above = experiment_above(paths.root)
    if above is not None:
        raise FileNotFoundError(f"{folder} is inside the experiment folder {above}, not one itself; report that "
                                f"folder: lightning-slt report {above}")
    if paths.parts.is_file():
        found = [paths.part(name).root for name in planned_parts(folder) if paths.part(name).manifest.is_file()]
    else:
        found = sorted(p.parent for p in paths.root.glob(f"*/{paths.manifest.name}"))
    if not found and planned_parts(folder):
        raise FileNotFoundError(f"{folder} is an experiment in parts ({', '.join(planned_parts(folder))}), none of "
                                "which has started yet; run one: lightning-slt experiment --config <its YAML> "
                                "--part=NAME")
    if not found:
        raise FileNotFoundError(f"{folder} holds no experiment.json and no parts with one: it is not an experiment "
                                "folder (give the output_dir of `lightning-slt experiment`)")
    return found


def planned_parts(folder: str | Path) -> list[str]:
    """The parts an experiment folder's parts.json plans, run or not ([] for one not in parts)."""
    path = ExperimentPaths.of(folder).parts
    if not path.is_file():
        return []
    fix = ("run `lightning-slt experiment` again with the experiment's config (it rewrites the file before any part "
           "trains), or delete it to report the parts in name order")
    parts = _read_mapping(path, "the mapping of an experiment's parts", fix)
    _check_fields(path, parts, {"parts": "names"}, fix)
    return list(parts["parts"])


def collect_parts(output_dir: str | Path) -> tuple[list[str], list[dict]]:
    """``collect`` over an experiment's parts: every row with its ``part``; a method's row (at a
    sparsity, of a seed) in the joint table comes from the first part configured to run the
    method that has it (a part that ``reuse``\ s an earlier one holds that part's runs too, and
    adds its own), else (rounds trained only for a control) from the first part that reports the
    method (``first_part`` True)."""
    collected = [(folder.name, configured_methods(folder), *collect(folder)) for folder in part_folders(output_dir)]
    methods = list(dict.fromkeys(m for _, _, part_methods, _ in collected for m in part_methods))
    keys = {name: {(r["method"], r["sparsity"], r["seed"]) for r in part_rows} for name, _, _, part_rows in collected}

    def owner(row: dict) -> str | None:
        key = (row["method"], row["sparsity"], row["seed"])
        configured = [name for name, names, _, _ in collected if row["method"] in names]
        if configured:
            return next((name for name in configured if key in keys[name]), None)
        return next(name for name, _, part_methods, _ in collected if row["method"] in part_methods)

    rows = [{"part": name, **row, "first_part": owner(row) == name} for name, _, _, part_rows in collected
            for row in part_rows]
    return methods, rows


def configured_methods(folder: str | Path) -> list[str]:
    """The methods an experiment folder (or part) was configured to run, from its experiment.json."""
    return list(read_manifest(folder)["config"]["methods"])


def write_report(output_dir: str | Path, paper: str | None = "wmt14_ende", wandb: bool | None = None) -> dict[str, Path]:
    """Write results.csv, results.md and bleu_vs_sparsity.png into ``output_dir`` (an experiment
    run in parts: one joint table, each method from the first part that runs it, and a ``part``
    column in results.csv).

    Args:
        paper: draw the paper's numbers for comparison ("wmt14_ende", "wmt14_enfr" or None).
        wandb: also log a W&B Table and the chart; None = as the experiment config says.
    """
    if paper is not None and paper not in paper_results():
        raise ValueError(f"paper {paper!r} is not one of the paper's tables shipped ({', '.join(paper_results())}); "
                         "give one of them, or none to draw no paper numbers")
    output_dir = Path(output_dir)
    folders = part_folders(output_dir)
    in_parts = folders != [output_dir]
    config = read_manifest(folders[0])["config"]
    metric = headline_metric(config)
    if in_parts:
        methods, rows = collect_parts(output_dir)
        shown = [r for r in rows if r["first_part"]]
        fields = ["part", *csv_fields(rows, metric)]
    else:
        methods, rows = collect(output_dir)
        shown, fields = rows, csv_fields(rows, metric)
    summary = summarize(shown, metric)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    where = ExperimentPaths(output_dir)
    paths = {"csv": where.results_csv, "md": where.results_md, "png": where.plot}
    for path in paths.values():
        refuse_folder_at(path)
    write_text(paths["csv"], buffer.getvalue())
    seeds = sorted({r["seed"] for r in shown if r["sparsity"] > 0}) or sorted({r["seed"] for r in shown})
    what = "Test BLEU and TER [%] (sacreBLEU, detokenized)" if metric == BLEU else f"Test {metric} (as the module logs it)"
    title = (f"# Results: {output_dir.name}\n\n{what}, mean ± sd over seeds {seeds}; memory = pruned matrices in "
             "CSC, as the paper's Table 1.\n\n")
    if in_parts:
        owner = {m: list(dict.fromkeys(r["part"] for r in shown if r["method"] == m)) for m in methods
                 if any(r["method"] == m for r in shown)}
        title += ("Run in parts; each column from the part that runs it (its 0 % row is that part's dense model): "
                  + ", ".join(f"{label(m)}: {' + '.join(parts)}" for m, parts in owner.items()) + ".\n\n")
    write_text(paths["md"], title + markdown_table(methods, summary, metric) + _warmup_note(folders)
               + _unfinished_note(output_dir, folders))
    plot(methods, summary, paths["png"], paper, metric)
    if wandb if wandb is not None else config.get("wandb"):
        _log_wandb(config, rows, paths["png"], fields, metric)
    return paths


def _unfinished_note(output_dir: Path, folders: list[Path], shown: int = 8) -> str:
    """One line naming the planned runs (and parts) that have not finished: the table shows only
    those that have, so its cells may average fewer seeds than its title says."""
    missing = [(folder, seed, run) for folder in folders
               for seed, run in unfinished_runs(folder, read_manifest(folder))]
    total = sum(len(planned_runs(read_manifest(folder)) or []) for folder in folders)
    not_run = [name for name in planned_parts(output_dir) if name not in {folder.name for folder in folders}]
    if not missing and not not_run:
        return ""
    line = "\n"
    if missing:
        groups: dict[str, list[str]] = {}
        for folder, seed, run in missing[:shown]:
            where = f"part {folder.name}, seed {seed}" if folder != output_dir else f"seed {seed}"
            groups.setdefault(where, []).append(run)
        more = f"; and {len(missing) - shown} more" if len(missing) > shown else ""
        line += (f"Not finished yet: {len(missing)} of {total} planned runs ("
                 + "; ".join(f"{where}: {', '.join(runs)}" for where, runs in groups.items()) + more
                 + "); the table shows the runs that have finished. ")
    if not_run:
        line += f"Parts not run yet: {', '.join(not_run)}. "
    return line + "Run `lightning-slt experiment` with this experiment's config again to finish them.\n"


def _warmup_note(folders: list[Path]) -> str:
    """One line where the protocol's warm-up rule (θk after the warm-up) could not be checked."""
    unknown = [f for f in folders if (read_manifest(f).get("schedule") or {}).get("warmup_steps", 0) is None]
    if not unknown:
        return ""
    return ("\nThe warm-up rule (θk after the warm-up) was not checked: the module takes no warmup_steps and the "
            "experiment declares none.\n")


def _log_wandb(config: dict, rows: list[dict], png: Path, fields: list[str] = CSV_FIELDS, metric: str = BLEU) -> None:
    import wandb

    run = wandb.init(project=config.get("wandb_project", "lightning_slt"), group=config.get("name") or Path(config["output_dir"]).name,
                     job_type="report", name="report", dir=config["output_dir"], reinit=True)
    table = wandb.Table(columns=fields, data=[[r.get(c) for c in fields] for r in rows])
    run.log({"results": table, f"{metric}_vs_sparsity": wandb.Image(str(png)),
             f"{metric}_vs_sparsity_table": wandb.plot.line(table, "sparsity", f"test_{metric}",
                                                            title=f"{metric} vs sparsity")})
    run.finish()
