"""``lightning-slt experiment`` and ``lightning-slt report``."""

from __future__ import annotations

import argparse


def experiment_main(argv: list[str]) -> int:
    """lightning-slt experiment --config conf/experiments/<name>.yaml [--key=value ...] [--wandb]"""
    from .lock import ExperimentLockedError
    from .paths import ExperimentPaths
    from .runner import is_rank_zero, load_config, run_experiment

    parser = argparse.ArgumentParser(prog="lightning-slt experiment", description=experiment_main.__doc__)
    parser.add_argument("--config", required=True, help="experiment YAML (see conf/experiments/)")
    parser.add_argument("--wandb", action="store_true", help="log every run to W&B (WANDB_MODE=offline works)")
    args, overrides = parser.parse_known_args(argv)
    if args.wandb:
        overrides.append("--wandb=true")
    try:
        try:
            config = load_config(args.config, overrides)
        except argparse.ArgumentError as error:  # a missing file, a typo, broken YAML: one line naming the file
            raise ValueError(f"{args.config}: {str(error).splitlines()[0]}") from None
        output_dir = run_experiment(config)
    except (ExperimentLockedError, FileNotFoundError, ValueError) as error:  # said before any training
        raise SystemExit(f"lightning-slt experiment: {error}") from None
    if is_rank_zero():  # under a launcher of one process per rank (DDP, FSDP2) rank 0 writes and shows the report
        results = ExperimentPaths(output_dir).results_md
        print(f"results: {results}")
        print(results.read_text())
    return 0


def _judges_bleu(output_dir: str) -> bool:
    from lightning_slt.atomic import read_json

    from .paths import ExperimentPaths
    from .report import BLEU, headline_metric, part_folders

    return headline_metric(read_json(ExperimentPaths(part_folders(output_dir)[0]).manifest)["config"]) == BLEU


def report_main(argv: list[str]) -> int:
    """lightning-slt report <experiment dir> [--paper wmt14_ende|wmt14_enfr|none] [--wandb] [--claims]"""
    from .report import write_report

    parser = argparse.ArgumentParser(prog="lightning-slt report", description=report_main.__doc__)
    parser.add_argument("output_dir")
    parser.add_argument("--paper", default="wmt14_ende", help="paper numbers to draw dashed (none to omit)")
    parser.add_argument("--wandb", action="store_true", default=None, help="log the table and chart to W&B")
    parser.add_argument("--claims", action="store_true",
                        help="also judge the paper's five claims (and the controls) and write claims.md")
    parser.add_argument("--dense-from", help="experiment folder whose dense runs (>= 3 seeds) give the seed spread "
                                             "(default: this one)")
    parser.add_argument("--seed", type=int, default=0, help="the seed whose runs the claims compare (default 0)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.output_dir, paper=None if args.paper == "none" else args.paper, wandb=args.wandb)
        if args.claims and not _judges_bleu(args.output_dir):
            args.claims = False  # the paper's claims are about BLEU of translations
            print("--claims skipped: this experiment's metric is not BLEU, and the paper's claims compare BLEU "
                  "of test translations")
        if args.claims:
            from .claims import write_claims

            paths["claims"], _ = write_claims(args.output_dir, args.dense_from, args.seed)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"lightning-slt report: {error}") from None
    print(paths["md"].read_text())
    if args.claims:
        print(paths["claims"].read_text())
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0
