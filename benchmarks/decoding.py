"""Beam search with the key/value cache vs recomputing the whole prefix at every step.

Same model, same source batch, both paths in one process, interleaved repetitions, medians.
Prints ONE JSON line: sentences per second of each path, their ratio, and whether every
hypothesis is identical.

Model: transformer_cpu shape (3+3 layers, d_model 256, 4 heads, FFN 1024, vocab 8000) with
random weights (seed 0), or the weights of a checkpoint given as the first argument (a
Lightning checkpoint of ``TranslationModule`` or a bare state_dict; sizes are read from the
weight shapes, the head count from ``--heads``).

Sources: the first ``--sentences`` lines of Multi30k test (English) from the data root
(``LIGHTNING_SLT_DATA``, else ``../shared/data`` beside the checkout). They are not run through
a tokenizer: each sentence becomes random token ids (seed 0) of its real length in
whitespace words plus one eos, a stand-in that keeps Multi30k's length distribution, which
is what decoding cost depends on. A random-weight model rarely predicts eos, so hypotheses
tend to run to the length limit int(1.2 * src_len + 10), longer than a trained model's.

Usage: python benchmarks/decoding.py [CHECKPOINT] [--sentences 64] [--beam 4] [--repeats 3]
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
        src[row, :length - 1] = torch.randint(first_word, config.vocab_size, (length - 1,), generator=generator)
        src[row, length - 1] = config.eos_id
    return src, lengths


def load_model(checkpoint: str | None, heads: int) -> Transformer:
    """transformer_cpu with random weights, or the weights (and sizes) of a checkpoint."""
    if checkpoint is None:
        torch.manual_seed(0)
        return Transformer(transformer_cpu())
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
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
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4, help="attention heads of the checkpoint's model")
    args = parser.parse_args()

    configure_cpu()
    model = load_model(args.checkpoint, args.heads).eval()
    src, lengths = source_batch(args.sentences, model.config)

    def run(use_cache: bool) -> tuple[float, list[list[int]]]:
        start = time.perf_counter()
        hyps = beam_search(model, src, beam_size=args.beam, use_cache=use_cache)
        return time.perf_counter() - start, hyps

    run(True)  # warm-up: allocator, thread pool, kernels
    seconds: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, list[list[list[int]]]] = {True: [], False: []}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            elapsed, hyps = run(use_cache)
            seconds[use_cache].append(elapsed)
            outputs[use_cache].append(hyps)

    reference = outputs[True][0]
    identical = all(hyps == reference for runs in outputs.values() for hyps in runs)
    cached = len(lengths) / statistics.median(seconds[True])
    uncached = len(lengths) / statistics.median(seconds[False])
    print(json.dumps({
        "cached_sent_per_s": round(cached, 2),
        "uncached_sent_per_s": round(uncached, 2),
        "speedup": round(cached / uncached, 2),
        "identical_output": identical,
        "sentences": len(lengths),
        "beam_size": args.beam,
        "repeats": args.repeats,
        "mean_src_tokens": round(statistics.mean(lengths), 2),
        "mean_hyp_tokens": round(statistics.mean(len(h) for h in reference), 2),
        "weights": args.checkpoint or "random (seed 0)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
