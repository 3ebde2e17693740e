"""Beam search with the key/value cache vs recomputing the whole prefix at every step.

Same model, same sources, both paths in one process, interleaved batch by batch, medians over
repetitions. Prints ONE JSON line: sentences per second of each path (wall clock), their
ratio, the ratio of process CPU time (steadier when other jobs share the cores), and whether
every hypothesis of every run is identical.

Model: transformer_cpu shape (3+3 layers, d_model 256, 4 heads, FFN 1024, vocab 8000) with
random weights (seed 0), or the weights of a checkpoint given as the first argument (a
Lightning checkpoint of ``TranslationModule`` or a bare state_dict; sizes are read from the
weight shapes, the head count from the checkpoint's hyper-parameters or ``--heads``).

Sources: the first ``--sentences`` lines of Multi30k test (English) from the data root
(``LIGHTNING_SLT_DATA``, else ``../shared/data`` beside the checkout). They are not run through
a tokenizer: each sentence becomes random token ids (seed 0) of its real length in
whitespace words plus one eos, a stand-in that keeps Multi30k's length distribution, which
is what decoding cost depends on. A random-weight model rarely predicts eos, so hypotheses
tend to run to the length limit int(1.2 * src_len + 10), longer than a trained model's;
``--max-len-a 1 --max-len-b 2`` caps them near Multi30k's target lengths (the cache saves less
on shorter outputs, since recomputation grows with the square of the length).

Timing needs the cores to itself: when other jobs run on them, every multi-threaded op waits
for a descheduled OpenMP thread, which slows the many small ops of cached decoding most (we saw
the ratio fall from 4.4 to 1.5); ``--threads 1`` keeps the comparison fair on a busy machine.

Usage: python benchmarks/decoding.py [CHECKPOINT] [--sentences 64] [--batch-size 16] [--beam 4]
       [--repeats 5] [--threads N] [--max-len-a 1.2] [--max-len-b 10]
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_slt._runtime import configure_cpu  # noqa: E402
from lightning_slt.model.presets import transformer_cpu  # noqa: E402
from lightning_slt.model.search import beam_search  # noqa: E402
from lightning_slt.model.transformer import Transformer, TransformerConfig  # noqa: E402


def data_root() -> Path:
    env = os.environ.get("LIGHTNING_SLT_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def source_batch(n_sentences: int, config: TransformerConfig) -> tuple[torch.Tensor, list[int]]:
    """(B, S) right-padded random ids with Multi30k test's sentence lengths (+ eos)."""
    with gzip.open(data_root() / "multi30k" / "test.en.gz", "rt", encoding="utf-8") as f:
        lengths = [len(line.split()) + 1 for _, line in zip(range(n_sentences), f)]
    generator = torch.Generator().manual_seed(0)
    src = torch.full((len(lengths), max(lengths)), config.pad_id, dtype=torch.long)
    first_word = max(config.pad_id, config.bos_id, config.eos_id) + 1
    for row, length in enumerate(lengths):
        words = torch.randint(first_word, config.vocab_size, (length - 1,), generator=generator)
        src[row, :length - 1] = words
        src[row, length - 1] = config.eos_id
    return src, lengths


def load_model(checkpoint: str | None, heads: int) -> Transformer:
    """transformer_cpu with random weights, or the weights (and sizes) of a checkpoint."""
    if checkpoint is None:
        torch.manual_seed(0)
        return Transformer(transformer_cpu())
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    heads = loaded.get("hyper_parameters", {}).get("n_heads", heads)  # TranslationModule saves it
    state = loaded.get("state_dict", loaded)
    prefix = next(k[: -len("embed.weight")] for k in state if k.endswith("embed.weight"))
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    vocab, d_model = weights["embed.weight"].shape

    def depth(stack: str) -> int:
        return len({k.split(".")[2] for k in weights if k.startswith(f"{stack}.layers.")})

    config = TransformerConfig(
        vocab_size=vocab, d_model=d_model, n_heads=heads, encoder_layers=depth("encoder"),
        decoder_layers=depth("decoder"), d_ff=weights["encoder.layers.0.ffn.fc1.weight"].shape[0],
        pre_norm="encoder.norm.weight" in weights,
    )
    model = Transformer(config)
    model.load_state_dict(weights)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="sentences per beam_search call")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--heads", type=int, default=4, help="attention heads, if the checkpoint does not record n_heads")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--max-len-a", type=float, default=1.2)
    parser.add_argument("--max-len-b", type=int, default=10)
    args = parser.parse_args()

    configure_cpu(reuse_freed_memory=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint, args.heads).eval()
    src, lengths = source_batch(args.sentences, model.config)
    batches = list(src.split(args.batch_size))

    def run(batch: torch.Tensor, use_cache: bool) -> tuple[float, float, list[list[int]]]:
        wall, cpu = time.perf_counter(), time.process_time()
        hyps = beam_search(model, batch, beam_size=args.beam, max_len_a=args.max_len_a,
                           max_len_b=args.max_len_b, use_cache=use_cache)
        return time.perf_counter() - wall, time.process_time() - cpu, hyps

    run(batches[0], True)  # warm-up: allocator, thread pool, kernels
    # Interleaved per batch, so both paths see the same machine load (the cores are shared).
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, list[list[list[int]]]] = {True: [], False: []}
    for _ in range(args.repeats):
        totals = {key: [0.0, 0.0, []] for key in (True, False)}
        for batch in batches:
            for use_cache in (True, False):
                seconds, cpu_seconds, hyps = run(batch, use_cache)
                totals[use_cache][0] += seconds
                totals[use_cache][1] += cpu_seconds
                totals[use_cache][2] += hyps
        for use_cache, (seconds, cpu_seconds, hyps) in totals.items():
            wall[use_cache].append(seconds)
            cpu[use_cache].append(cpu_seconds)
            outputs[use_cache].append(hyps)

    reference = outputs[True][0]
    identical = all(hyps == reference for runs in outputs.values() for hyps in runs)
    cached = len(lengths) / statistics.median(wall[True])
    uncached = len(lengths) / statistics.median(wall[False])
    print(json.dumps({
        "cached_sent_per_s": round(cached, 2),
        "uncached_sent_per_s": round(uncached, 2),
        "speedup": round(cached / uncached, 2),
        "identical_output": identical,
        "cpu_time_speedup": round(statistics.median(cpu[False]) / statistics.median(cpu[True]), 2),
        "sentences": len(lengths),
        "batch_size": args.batch_size,
        "beam_size": args.beam,
        "max_len": f"{args.max_len_a} * src_len + {args.max_len_b}",
        "repeats": args.repeats,
        "mean_src_tokens": round(statistics.mean(lengths), 2),
        "mean_hyp_tokens": round(statistics.mean(len(h) for h in reference), 2),
        "weights": args.checkpoint or "random (seed 0)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
