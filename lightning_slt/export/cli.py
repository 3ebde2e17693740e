"""``lightning-slt export``: write the compact ticket file of a TranslationModule checkpoint.

Usage::

    lightning-slt export runs/slt/s0.90/last.ckpt --out model.ticket [--values fp32|fp16|bf16]

Prints one JSON line with the sizes (bytes) of the ticket's parts and of the checkpoint.
"""

import argparse
import json
import os
from typing import Any

VALUES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-slt export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="Lightning checkpoint of a TranslationModule")
    parser.add_argument("--out", required=True, help="ticket file to write (atomically)")
    parser.add_argument("--values", choices=sorted(VALUES), default="fp32",
                        help="dtype of the stored weights: fp32 (bit-identical, default), fp16 or bf16")
    parser.add_argument("--no-tokenizer", action="store_true",
                        help="record only the tokenizer's sha256, not its bytes")
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightning-slt export``; returns the exit code."""
    from lightning_slt.export.checkpoint import export_checkpoint

    args = build_parser().parse_args(argv)
    sizes: dict[str, Any] = export_checkpoint(
        args.checkpoint, args.out, values_dtype=VALUES[args.values], embed_tokenizer=not args.no_tokenizer
    )
    sizes["checkpoint"] = os.path.getsize(args.checkpoint)
    print(json.dumps({"ticket": args.out, "values": args.values, "bytes": sizes}))  # the command's output
    return 0
