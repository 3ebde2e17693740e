"""``lightning-slt export``: write the compact ticket file of a TranslationModule checkpoint.

Usage::

    lightning-slt export runs/slt/s0.90/last.ckpt --out model.ticket [--values fp32|fp16|bf16]
    lightning-slt export runs/slt/s0.90/last.ckpt --out wt.ticket --winning-ticket [--step K]
    lightning-slt export ... --wandb-artifact [--wandb-project P] [--artifact-name N] [--artifact-alias A]
    lightning-slt export last.ckpt|model.ticket --format ctranslate2 --out ct2_model/ [--quantization int8]

Prints one JSON line with the ticket's kind and the sizes (bytes) of its parts and of the
checkpoint (and the W&B artifact's name and digest when uploaded); with ``--format
ctranslate2``, the folder's files and their sizes (see ``export.ctranslate2``).
"""

import argparse
import json
import os
from typing import Any

VALUES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
FORMATS = ("ticket", "ctranslate2")
# export.ctranslate2.QUANTIZATIONS, repeated so that --help does not import the converter
CT2_QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "int8_float16", "bfloat16",
                     "int8_bfloat16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-slt export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="Lightning checkpoint of a TranslationModule (with --format ctranslate2 "
                                           "also a ticket written with its tokenizer)")
    parser.add_argument("--out", required=True, help="ticket file to write (atomically); with --format ctranslate2, "
                                                     "a new or empty folder")
    parser.add_argument("--format", choices=FORMATS, default="ticket",
                        help="ticket: our compact ticket file (default); ctranslate2: a CTranslate2 model folder "
                             "(model.bin, vocabulary in our id order, sentencepiece.model) for "
                             "ctranslate2.Translator; needs " + "`pip install 'lightning_slt[ctranslate2]'`")
    parser.add_argument("--quantization", choices=CT2_QUANTIZATIONS, default=None,
                        help="with --format ctranslate2: the weight type CTranslate2 stores (default: float32 as "
                             "trained; int8 for CPU deployment)")
    parser.add_argument("--values", choices=sorted(VALUES), default="fp32",
                        help="dtype of the stored weights: fp32 (bit-identical, default), fp16 or bf16")
    parser.add_argument("--no-tokenizer", action="store_true",
                        help="record only the tokenizer's sha256, not its bytes")
    parser.add_argument("--winning-ticket", action="store_true",
                        help="write θk ⊙ m (the weights WeightRewind recorded at step k, under the run's mask) "
                             "instead of the final weights: the start of the next round, for "
                             "WeightRewind(step=k, source=...) + ConvergedMask(..., sparsity=None)")
    parser.add_argument("--step", type=int, default=None,
                        help="with --winning-ticket: the rewind step k (default: the only one recorded)")
    parser.add_argument("--wandb-artifact", action="store_true",
                        help="also log the ticket as a W&B artifact of type 'model' in a new run "
                             "(job_type 'export'; WANDB_MODE=offline works without network)")
    parser.add_argument("--wandb-project", default="lightning_slt", help="W&B project of that run")
    parser.add_argument("--artifact-name", default=None,
                        help="artifact name (default: the ticket's file name without its suffix)")
    parser.add_argument("--artifact-alias", action="append", default=None,
                        help="artifact alias, e.g. best (repeatable; W&B adds 'latest' itself)")
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightning-slt export``; returns the exit code.

    Raises:
        SystemExit: a bad argument, or a checkpoint that cannot be exported (the message says why).
    """
    from lightning_slt.artifacts.keys import TICKET_KIND, WINNING_TICKET_KIND
    from lightning_slt.export.checkpoint import export_checkpoint
    from lightning_slt.export.outputs import check_output_file
    from lightning_slt.export.winning_ticket import export_winning_ticket

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.step is not None and not args.winning_ticket:
        parser.error("--step needs --winning-ticket (a ticket of the final weights has no rewind step)")
    if not args.wandb_artifact and (args.artifact_name or args.artifact_alias):
        parser.error("--artifact-name and --artifact-alias need --wandb-artifact")
    if args.format == "ctranslate2":
        return _export_ctranslate2(parser, args)
    if args.quantization is not None:
        parser.error("--quantization needs --format ctranslate2 (a ticket's weight type is --values)")
    options = {"values_dtype": VALUES[args.values], "embed_tokenizer": not args.no_tokenizer}
    try:
        check_output_file("--out", args.out, {"checkpoint": args.checkpoint})  # before the checkpoint is read
        _check_not_a_ticket(args.checkpoint)
        if args.winning_ticket:
            sizes: dict[str, Any] = export_winning_ticket(args.checkpoint, args.out, step=args.step, **options)
        else:
            sizes = export_checkpoint(args.checkpoint, args.out, **options)
    except (OSError, ValueError) as error:  # OSError: a folder that is not writable, a full disk (file named)
        raise SystemExit(f"lightning-slt export: {error}") from None
    sizes["checkpoint"] = _size(args.checkpoint)
    output: dict[str, Any] = {"ticket": args.out, "kind": TICKET_KIND, "values": args.values, "bytes": sizes}
    if args.winning_ticket:
        from lightning_slt.artifacts.ticket import read_ticket

        output.update(kind=WINNING_TICKET_KIND, step=read_ticket(args.out).extra["rewind_step"])
    if args.wandb_artifact:
        output["artifact"] = _log_artifact(args)
    print(json.dumps(output))  # the command's output
    return 0


def _export_ctranslate2(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--format ctranslate2``: the checkpoint's or ticket's model as a CTranslate2 folder."""
    for flag, given in (("--winning-ticket", args.winning_ticket), ("--wandb-artifact", args.wandb_artifact),
                        ("--no-tokenizer", args.no_tokenizer), ("--values", args.values != "fp32")):
        if given:
            parser.error(f"{flag} applies to ticket files, not to --format ctranslate2 (a CTranslate2 folder always "
                         "holds the final weights and the tokenizer; its weight type is --quantization)")
    from lightning_slt.export.ctranslate2 import check_target, export_ctranslate2

    try:
        check_target(args.out, {"checkpoint": args.checkpoint})  # before ctranslate2 is imported or anything read
        report = export_ctranslate2(args.checkpoint, args.out, quantization=args.quantization)
    except (OSError, ValueError) as error:  # CTranslate2ExportError and TicketError are ValueErrors; OSError: disk
        raise SystemExit(f"lightning-slt export: {error}") from None
    output = {"model": args.out, "format": "ctranslate2", "quantization": report["quantization"],
              "vocab_size": report["vocab_size"], "special_tokens": report["special_tokens"],
              "bytes": {**report["files"], "input": _size(args.checkpoint)}}
    print(json.dumps(output))  # the command's output
    return 0


def _log_artifact(args: argparse.Namespace) -> dict[str, Any]:
    """Log the written ticket in a run of its own; returns what the JSON line reports of it."""
    import wandb

    from lightning_slt.export.wandb_artifact import log_ticket_artifact

    run = wandb.init(project=args.wandb_project, job_type="export",
                     config={"checkpoint": os.path.abspath(args.checkpoint), "winning_ticket": args.winning_ticket,
                             "step": args.step, "values": args.values})
    try:
        artifact = log_ticket_artifact(args.out, run, name=args.artifact_name, aliases=args.artifact_alias)
    finally:
        run.finish()
    return {"name": artifact.name, "type": artifact.type, "digest": artifact.digest, "project": args.wandb_project,
            "run_id": run.id, "mode": run.settings.mode}


def _check_not_a_ticket(path: str) -> None:
    """A ticket given as the checkpoint to export: say so (the checkpoint reader would report an
    unpickling error), and what a ticket can be exported to."""
    from lightning_slt.artifacts.ticket import MAGIC

    if os.path.isfile(path):
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) == MAGIC:
                raise ValueError(f"{path} is already a ticket file, the format this command writes; copy it to "
                                 "change its name, or pass --format ctranslate2 to convert it. A ticket with other "
                                 "--values or without the tokenizer is exported from the run's checkpoint")


def _size(path: str) -> int:
    """Bytes of a checkpoint file, or of all files of a distributed checkpoint folder."""
    if os.path.isdir(path):
        return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
    return os.path.getsize(path)
