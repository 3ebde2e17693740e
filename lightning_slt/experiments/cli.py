"""``lightning-slt experiment`` and ``lightning-slt report``."""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path

REQUIRED_EXAMPLES = {"base": "base: [conf/multi30k_cpu.yaml] (the LightningCLI config(s) of the dense run)",
                     "output_dir": "output_dir: runs/experiments/<name> (the experiment's folder)"}


def read_experiment_yaml(path: str) -> None:
    """Refuse in one line naming the file what the config parser would say in many lines or not at
    all: a missing file or a folder, broken YAML (with its line and column), an empty file or one
    that is not a mapping, a key given twice (YAML keeps the last one without a word)."""
    import yaml

    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: no such file (relative paths are read from {Path.cwd()}); give an experiment "
                         "YAML, e.g. conf/experiments/slt.yaml")
    if file.is_dir():
        raise ValueError(f"{path} is a folder, not an experiment YAML; give a file such as conf/experiments/slt.yaml")
    try:
        node = yaml.compose(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read ({error}); give an experiment YAML in UTF-8") from None
    except yaml.MarkedYAMLError as error:
        mark, context = error.problem_mark, error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        started = (f"{error.context} started at line {context.line + 1}, column {context.column + 1}: "
                   if error.context and context else f"{error.context}: " if error.context else "")
        raise ValueError(f"{path}{where}: broken YAML ({started}{error.problem}); fix the syntax there") from None
    if node is None:
        raise ValueError(f"{path} is empty; an experiment YAML holds its settings, at least base:, methods: and "
                         "output_dir: (see conf/experiments/slt.yaml)")
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the value {node.value!r}"
        raise ValueError(f"{path} holds {kind}, not a mapping of settings (base:, methods:, output_dir: ...); "
                         "see conf/experiments/slt.yaml")
    _refuse_duplicate_keys(path, node)


def _refuse_duplicate_keys(path: str, node, prefix: str = "") -> None:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, prefix)
    if not isinstance(node, yaml.MappingNode):
        return
    seen = set()
    for key, value in node.value:
        name = f"{prefix}{key.value}"
        if name in seen:
            raise ValueError(f"{path}, line {key.start_mark.line + 1}: {name} is given twice (YAML keeps only the last "
                             "one, silently); keep one")
        seen.add(name)
        _refuse_duplicate_keys(path, value, f"{name}.")


def argument_error(path: str, error: Exception, overrides: list[str]) -> str:
    """The config parser's many-line error as one line: where (the file, or the command-line
    option that gave the key), the key, what it must be, what it got, and the fix."""
    from .config import ExperimentConfig, Part

    text = str(error)
    keys = re.findall(r'Parser key "([^"]+)"', text)
    in_part = keys[:1] == ["parts"]
    owner = Part if in_part else ExperimentConfig
    given = next((o for o in overrides if keys and o.split("=")[0] == f"--{keys[0]}"), None)
    where = given or path
    if unknown := re.search(r"Option '([^']+)' is not accepted", text):
        name, fields = unknown.group(1), list(owner.__dataclass_fields__)
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the keys are: {', '.join(fields)}"
        return f"{where}: {'parts: ' if in_part else ''}unknown key {name!r}{' of a part' if in_part else ''}; {hint}"
    if unrecognized := re.search(r"[Uu]nrecognized arguments: (--([\w.]+)\S*)", text):
        fields = [f"--{name}" for name in ExperimentConfig.__dataclass_fields__]
        close = difflib.get_close_matches(f"--{unrecognized.group(2)}", fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the options are: {', '.join(fields)}"
        return f"{unrecognized.group(1)}: unknown option '--{unrecognized.group(2)}'; {hint}"
    if required := re.search(r"the following arguments are required: (\S+)", text):
        name = required.group(1).rstrip(",")
        return f"{where}: {name} is missing; add it: {REQUIRED_EXAMPLES.get(name, name + ': ...')}"
    if keys and (got := re.search(r"(?:Got|Given) value: (.*)", text)):
        field = owner.__dataclass_fields__.get(keys[-1])
        if field is not None:
            expected = str(field.type)
            form = " (YAML: [a, b, ...])" if expected.startswith("list") else (
                " (YAML: {key: value})" if expected.startswith("dict") else "")
            return f"{where}: {'.'.join(keys)} must be {expected}, got {got.group(1).strip()}{form}"
    return f"{where}: {' '.join(text.split())}"


def experiment_main(argv: list[str]) -> int:
    """lightning-slt experiment --config conf/experiments/<name>.yaml [--key=value ...] [--wandb] [--parallel N]"""
    from .lock import ExperimentLockedError
    from .paths import ExperimentPaths
    from .runner import is_rank_zero, load_config, run_experiment

    parser = argparse.ArgumentParser(prog="lightning-slt experiment", description=experiment_main.__doc__)
    parser.add_argument("--config", required=True, help="experiment YAML (see conf/experiments/)")
    parser.add_argument("--wandb", action="store_true", help="log every run to W&B (WANDB_MODE=offline works)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs trained at once, each with cores / N threads (or one of N GPUs); runs that build "
                             "on others wait for them (default 1)")
    args, overrides = parser.parse_known_args(argv)
    if args.wandb:
        overrides.append("--wandb=true")
    try:
        read_experiment_yaml(args.config)
        try:
            config = load_config(args.config, overrides)
        except argparse.ArgumentError as error:  # a typo, a wrong type: one line naming the file and the key
            raise ValueError(argument_error(args.config, error, overrides)) from None
        except (FileNotFoundError, ValueError) as error:  # a setting the config's checks refuse
            raise ValueError(f"{args.config}: {error}") from None
        output_dir = run_experiment(config, parallel=args.parallel)
    except (ExperimentLockedError, FileNotFoundError, ValueError) as error:  # said before any training
        raise SystemExit(f"lightning-slt experiment: {error}") from None
    if is_rank_zero():  # under a launcher of one process per rank (DDP, FSDP2) rank 0 writes and shows the report
        results = ExperimentPaths(output_dir).results_md
        print(f"results: {results}")
        print(results.read_text())
    return 0


def _judges_bleu(output_dir: str) -> bool:
    from .report import BLEU, headline_metric, part_folders, read_manifest

    return headline_metric(read_manifest(part_folders(output_dir)[0])["config"]) == BLEU


def report_main(argv: list[str]) -> int:
    """lightning-slt report <experiment dir> [--paper wmt14_ende|wmt14_enfr|none] [--wandb] [--claims]"""
    from .paths import ExperimentPaths
    from .report import refuse_folder_at, write_report

    parser = argparse.ArgumentParser(prog="lightning-slt report", description=report_main.__doc__)
    parser.add_argument("output_dir")
    parser.add_argument("--paper", default="wmt14_ende", help="paper numbers to draw dashed and to set beside the "
                                                              "claims (wmt14_ende, wmt14_enfr; none to omit)")
    parser.add_argument("--wandb", action="store_true", default=None, help="log the table and chart to W&B")
    parser.add_argument("--claims", action="store_true",
                        help="also judge the paper's five claims (and the controls) and write claims.md")
    parser.add_argument("--dense-from", help="experiment folder whose dense runs (>= 3 seeds) give the seed spread "
                                             "(default: this one; given, the dense-spread rule judges even where "
                                             "methods have seeds of their own)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the seed whose runs the claims compare under the dense-spread rule (default 0); where "
                             "methods have seeds of their own, every seed is used")
    args = parser.parse_args(argv)
    paper = None if args.paper == "none" else args.paper
    try:
        if args.claims:  # before the report is written: the claims' file may not be written over a folder
            refuse_folder_at(ExperimentPaths.of(args.output_dir).claims)
        paths = write_report(args.output_dir, paper=paper, wandb=args.wandb)
        if args.claims and not _judges_bleu(args.output_dir):
            args.claims = False  # the paper's claims are about BLEU of translations
            print("--claims skipped: this experiment's metric is not BLEU, and the paper's claims compare BLEU "
                  "of test translations")
        if args.claims:
            from .claims import write_claims

            paths["claims"], _ = write_claims(args.output_dir, args.dense_from, args.seed, paper)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"lightning-slt report: {error}") from None
    print(paths["md"].read_text())
    if args.claims:
        print(paths["claims"].read_text())
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0
