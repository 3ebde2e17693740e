"""``lightning-slt demo``: the project's main job in about ten minutes on 2 CPU cores.

A short dense run, one stabilized-lottery-ticket round from it (mask from its θT, weights rewound
to its θk), both tested on Multi30k test2016, exported as tickets and timed translating; then a
side-by-side table and the commands that go further. Step counts and sparsity live in
``conf/demo/{base,dense,slt}.yaml``; extra arguments override both runs (``--trainer.max_steps=600``).
The dense-only quickstart is ``lightning-slt quickstart`` (``conf/quickstart.yaml``).
"""

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

SPEED_SENTENCES = 300  # first test2016 sentences timed per pass: enough to rank, cheap enough for the demo
SPEED_REPEATS = 2  # timed passes per model after one warm-up, interleaved dense/sparse

NEXT_STEPS = """\
Go further:
  lightning-slt experiment --config conf/experiments/slt.yaml      # SLT as the paper runs it: 13 rounds to 98 %
  lightning-slt experiment --config conf/experiments/all_methods.yaml && lightning-slt report runs/experiments/all_methods
  lightning-slt fit --config conf/multi30k_cpu.yaml --config conf/pruning/record_rewind.yaml   # the one-hour dense baseline
  echo "A dog runs on the beach." | lightning-slt translate --ticket {ticket} --sparse auto
  lightning-slt export {ticket} --format ctranslate2 --quantization int8 --out runs/demo/ct2   # deploy with CTranslate2
"""


def demo_main(argv: list[str]) -> int:
    """Entry point of ``lightning-slt demo [--config-dir DIR] [overrides]``; returns the exit code.

    ``--config-dir`` names a folder with its own base/dense/slt.yaml (default: the shipped conf/demo).
    """
    from lightning_slt.launch import conf_file as _conf_file, run_lightning_cli
    from lightning_slt.data.text import read_parallel

    argv = list(argv)
    if argv[:1] == ["--config-dir"]:
        if len(argv) < 2:
            raise SystemExit("lightning-slt demo: --config-dir needs a folder holding base.yaml, dense.yaml and slt.yaml")
        base = Path(argv[1]) / "base.yaml"
        argv = argv[2:]
    else:
        base = _conf_file("demo/base.yaml")
    start = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    checkpoints: dict[str, Path] = {}
    for name in ("dense", "slt"):
        cli = run_lightning_cli(["fit", "--config", str(base), "--config", str(base.parent / f"{name}.yaml"), *argv])
        if not cli.trainer.is_global_zero:
            return 0
        checkpoints[name] = Path(cli.trainer.checkpoint_callback.last_model_path)
        cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        rows[name] = {"bleu": cli.model.last_test_metrics["bleu"], "steps": cli.trainer.global_step,
                      **_parameters(cli.model.model)}
        files = cli.datamodule.input_files("test")
    sources = read_parallel(files["test source file"], files["test target file"])[0][:SPEED_SENTENCES]
    tickets = {name: _export(path) for name, path in checkpoints.items()}
    speed = _speed(tickets, sources)
    for name in rows:
        rows[name].update(checkpoint_bytes=os.path.getsize(checkpoints[name]), ticket_bytes=os.path.getsize(tickets[name]),
                          sentences_per_s=speed[name])
    print(format_table(rows, minutes=(time.perf_counter() - start) / 60, sentences=len(sources)))
    print(NEXT_STEPS.format(ticket=tickets["slt"], slt_ckpt=checkpoints["slt"]))
    return 0


def _parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(p.count_nonzero()) for p in model.parameters())
    return {"parameters": total, "nonzero": nonzero}


def _export(checkpoint: Path) -> Path:
    from lightning_slt.export.checkpoint import export_checkpoint

    ticket = checkpoint.with_name("model.ticket")
    export_checkpoint(checkpoint, ticket)
    return ticket


def _speed(tickets: dict[str, Path], sentences: list[str]) -> dict[str, float]:
    """Greedy sentences/s of the dense ticket (dense kernels) and the SLT ticket (``--sparse auto``),
    median of interleaved passes over the same sentences, batched as ``lightning-slt translate``."""
    from lightning_slt.export.checkpoint import load_ticket
    from lightning_slt.export.sparse_linear import sparsify_
    from lightning_slt.export.translate import decoding_rows

    modules = {name: load_ticket(path) for name, path in tickets.items()}
    rows, encoder_rows = decoding_rows(modules["slt"], sentences, batch_tokens=4096, beam=1)
    sparsify_(modules["slt"].model, "auto", rows=rows, encoder_rows=encoder_rows)
    seconds: dict[str, list[float]] = {name: [] for name in modules}
    for repeat in range(SPEED_REPEATS + 1):
        for name in (("dense", "slt") if repeat % 2 == 0 else ("slt", "dense")):
            begin = time.perf_counter()
            modules[name].translate(sentences, beam_size=1)
            if repeat > 0:  # the first pass warms caches and the allocator
                seconds[name].append(time.perf_counter() - begin)
    return {name: len(sentences) / statistics.median(values) for name, values in seconds.items()}


def format_table(rows: dict[str, dict[str, Any]], minutes: float, sentences: int) -> str:
    """The dense-vs-ticket table the demo prints (Markdown, so it pastes into a README)."""
    dense, slt = rows["dense"], rows["slt"]
    sparsity = 1 - slt["nonzero"] / slt["parameters"]

    def mb(n: int) -> str:
        return f"{n / 1e6:.1f} MB"

    lines = [
        f"| Multi30k en→de, {dense['steps']} + {slt['steps']} steps | dense | SLT ticket |",
        "|---|---|---|",
        f"| test2016 BLEU (greedy) | {dense['bleu']:.2f} | {slt['bleu']:.2f} ({slt['bleu'] - dense['bleu']:+.2f}) |",
        f"| parameters remaining | {dense['nonzero'] / 1e6:.2f}M of {dense['parameters'] / 1e6:.2f}M | "
        f"{slt['nonzero'] / 1e6:.2f}M ({1 - sparsity:.1%}; {sparsity:.1%} pruned overall) |",
        f"| file | last.ckpt {mb(dense['checkpoint_bytes'])}; as ticket {mb(dense['ticket_bytes'])} | "
        f"ticket {mb(slt['ticket_bytes'])} ({slt['ticket_bytes'] / dense['checkpoint_bytes']:.1%} of last.ckpt) |",
        f"| translation speed, {sentences} sentences, {torch.get_num_threads()} threads | "
        f"{dense['sentences_per_s']:.1f} sent/s (dense kernels) | {slt['sentences_per_s']:.1f} sent/s "
        f"({slt['sentences_per_s'] / dense['sentences_per_s']:.2f}×, `--sparse auto`) |",
    ]
    return "\n" + "\n".join(lines) + f"\n\n(demo took {minutes:.1f} min)\n"
