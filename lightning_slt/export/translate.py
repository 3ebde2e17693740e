"""``lightning-slt translate``: translate text with a ticket or checkpoint, sparse where it pays.

Usage::

    lightning-slt translate --ticket model.ticket --input test.en --output test.hyp --beam 4
    cat test.en | lightning-slt translate --checkpoint best.ckpt --sparse off

One raw sentence per input line (split on LF only, CRLF accepted, empty lines kept), one
translation per output line, in input order (sentences
are sorted by length into batches of at most ``--batch-tokens`` padded source tokens, as
``TranslationModule.translate`` does). ``--sparse auto`` times dense against CSR for every
pruned projection at this run's batch size and keeps the faster (``sparse_linear.sparsify_``).

Every path is checked before the model is loaded (``export.outputs``): outputs that could not be
written or would replace an input, a missing model file or one given to the other option, a
missing input; a winning ticket (the start of a pruning round) is translated with a warning.
"""

import argparse
import os
import statistics
import sys
import time
from typing import Any

from lightning_slt.atomic import write_json, write_text
from lightning_slt.export.sparse_linear import sparsify_


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-slt translate", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ticket", help="ticket file written by `lightning-slt export`")
    source.add_argument("--checkpoint", help="Lightning checkpoint of a TranslationModule")
    parser.add_argument("--input", help="file of raw sentences, one per line (default, or -: stdin)")
    parser.add_argument("--output", help="file for the translations (default, or -: stdout)")
    parser.add_argument("--beam", type=int, default=None, help="beam size, 1 = greedy (default: the model's beam_size)")
    parser.add_argument("--sparse", choices=("auto", "on", "off"), default="auto",
                        help="CSR matmuls for pruned projections: timed per layer (auto), always (on), never (off)")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="padded source tokens per batch (default 4096)")
    parser.add_argument("--report", help="write a JSON report (sparse choices per layer, timings) to this file")
    return parser


def load_module(ticket: str | None, checkpoint: str | None) -> Any:
    """The TranslationModule of a ticket or a checkpoint, on CPU in eval mode (a winning ticket,
    the start of a pruning round, with a warning)."""
    if ticket is not None:
        from lightning_slt.export.checkpoint import load_ticket

        return load_ticket(ticket, use="these translations are those of the weights at that step")
    from lightning_slt.export.checkpoint import read_module_checkpoint
    from lightning_slt.model.module import TranslationModule

    read_module_checkpoint(checkpoint)  # says what is wrong with a file that is not our checkpoint
    return TranslationModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()


def check_model_file(option: str, path: str) -> None:
    """Refuse a missing model file, or a ticket and a checkpoint given to each other's option,
    before the input is read (the readers would say "cannot read checkpoint ... UnpicklingError")."""
    from lightning_slt.artifacts.loading import not_a_regular_file
    from lightning_slt.artifacts.ticket import MAGIC

    if not os.path.exists(path):
        writer = "`lightning-slt export`" if option == "--ticket" else "`lightning-slt fit` (a .ckpt file)"
        raise ValueError(f"{option} {path}: no such file; give the file written by {writer}")
    if os.path.isdir(path):
        return  # a distributed checkpoint folder: its reader says whether it is one
    problem = not_a_regular_file(path)  # before open(): a FIFO waits for a writer forever
    if problem:
        raise ValueError(f"{option} {path} {problem}; give the file written by `lightning-slt export` or `fit`")
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC))
    if option == "--checkpoint" and head == MAGIC:
        raise ValueError(f"--checkpoint {path} is a ticket file (written by `lightning-slt export`), not a Lightning "
                         f"checkpoint: pass it as --ticket {path}")
    if option == "--ticket" and head[:2] == b"PK":
        raise ValueError(f"--ticket {path} is a Lightning checkpoint (a zip archive), not a ticket file: pass it as "
                         f"--checkpoint {path}")


def decoding_rows(module: Any, sentences: list[str], batch_tokens: int, beam: int) -> tuple[int, int]:
    """(decoder rows, encoder rows) per batch for `sparsify_`: hypotheses and source tokens.

    Batches hold about batch_tokens / mean-length sentences, each expanded to `beam` hypotheses.
    """
    lengths = [len(ids) + 1 for ids in module.tokenizer.encode(sentences)] or [1]
    sentences_per_batch = max(1, min(len(lengths), batch_tokens // max(1, round(statistics.mean(lengths)))))
    return sentences_per_batch * beam, min(batch_tokens, sentences_per_batch * max(lengths))


def translate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightning-slt translate``; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.input, args.output = (None if path == "-" else path for path in (args.input, args.output))  # the usual "-"
    if args.batch_tokens < 1:
        raise SystemExit(f"--batch-tokens must be >= 1, got {args.batch_tokens}")
    if args.beam is not None and args.beam < 1:
        raise SystemExit(f"--beam must be >= 1 (1 = greedy), got {args.beam}")
    from lightning_slt._runtime import configure_cpu
    from lightning_slt.data.errors import DataError
    from lightning_slt.export.outputs import check_output_file

    model_option, model_path = ("--ticket", args.ticket) if args.ticket is not None else ("--checkpoint", args.checkpoint)
    inputs = {"--input": args.input, "--ticket": args.ticket, "--checkpoint": args.checkpoint}
    try:  # every path first: a bad one fails at once, before the model is loaded or anything translated
        check_output_file("--output", args.output, inputs)
        check_output_file("--report", args.report, {**inputs, "--output": args.output})
        check_model_file(model_option, model_path)
        for stream, option, name in ((sys.stdout, args.output, "output"), (sys.stdin, args.input, "input")):
            if option is None and stream is None:  # started with >&- or <&-: found only after the work
                raise ValueError(f"standard {name} is closed, and the command has no --{name}: pass --{name} FILE")
        if args.input is not None and not os.path.exists(args.input):
            raise ValueError(f"--input {args.input}: no such file; give a text file with one sentence per line, or "
                             "leave --input out to read standard input")
        sentences = _read_lines(args.input)  # before loading the model: a bad input fails at once
    except (ValueError, OSError, DataError) as error:
        raise SystemExit(f"lightning-slt translate: {error}") from None
    configure_cpu()  # `lightning-slt translate` got the heap setting from cli.main already
    try:
        module = load_module(args.ticket, args.checkpoint)
    except (ValueError, OSError) as error:  # TicketError and an unreadable checkpoint are ValueErrors
        raise SystemExit(f"lightning-slt translate: {error}") from None
    if module.tokenizer is None:
        raise SystemExit(
            "the model has no tokenizer (ticket written without it); re-export with the tokenizer embedded"
        )
    beam = args.beam if args.beam is not None else module.hparams.beam_size
    rows, encoder_rows = decoding_rows(module, sentences, args.batch_tokens, beam)
    choices = sparsify_(module.model, args.sparse, rows=rows, encoder_rows=encoder_rows)
    start = time.perf_counter()
    translations = module.translate(sentences, beam_size=beam, max_tokens=args.batch_tokens)
    seconds = time.perf_counter() - start
    report = {
        "sentences": len(sentences), "seconds": round(seconds, 3), "beam": beam, "sparse": args.sparse,
        "rows": rows, "encoder_rows": encoder_rows, "layers": [choice.as_dict() for choice in choices],
    }
    try:
        _write_lines(args.output, translations)
        if args.report:
            write_json(args.report, report)
    except OSError as error:  # a full disk: atomic.py's message names the file and the fix
        raise SystemExit(f"lightning-slt translate: {error}") from None
    return 0


def _read_lines(path: str | None) -> list[str]:
    """Input lines split on LF only, as the corpora are read (``str.splitlines`` would also split
    on U+2028, form feeds and other separators and misalign every later output line)."""
    from lightning_slt.data.text import decode_lines, read_lines

    if path is None:
        return decode_lines(sys.stdin.buffer.read(), "standard input")
    return read_lines(path)


def _write_lines(path: str | None, lines: list[str]) -> None:
    # a translation holds no line break of its own: one output line per input line, always
    text = "".join(line.replace("\r", " ").replace("\n", " ") + "\n" for line in lines)
    if path is None:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
        return
    write_text(path, text)
