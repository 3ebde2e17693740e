"""Greedy decoding speed of one pruned model, dense kernels vs CSR (``sparsify_``), on Multi30k test2016.

Model: a TranslationModule checkpoint (``--checkpoint``), else ``Transformer(transformer_base(33000))``
with random init (d_model 512, FFN 2048, 33k vocab). For each sparsity (default 90 % and 95 %)
every >= 2-dim tensor is pruned layer-wise by magnitude (nested in a checkpoint's own zeros),
then the *same* pruned weights decode the test set with dense kernels and, in a deep copy,
with ``sparsify_(mode="auto")``: CSR wherever the per-layer timing at this batch size says so.

Protocol: sentences sorted by length into batches of at most ``--batch-tokens`` source
tokens; one warm-up pass each, then ``--repeats`` interleaved passes (dense, sparse, dense,
...); sentences/s from the median pass time. Also reported: how many sentences' outputs differ
between the two, BLEU of both against test.de when a checkpoint is given (null otherwise: a
random model's output is not a translation), and the per-layer table (shape x sparsity x rows
-> dense ms, sparse ms, winner) that "auto" measured.

CTranslate2 rows (when ``ctranslate2`` is installed; ``--no-ctranslate2`` skips them): the same
pruned weights exported with ``export.ctranslate2`` as float32 and int8 folders decode the same
batches with ``Translator(intra_threads=--threads, inter_threads=1)``, greedy, timed in the same
interleaved passes; each batch is decoded to its largest per-sentence limit and every
hypothesis cut to its own (exact for greedy search), so the outputs are comparable token for
token with ours. Reported: sentences/s, ratios to our dense and CSR passes, outputs differing
from ours, BLEU of both (with a checkpoint), int8's BLEU cost against float32, and the CPU model.

Run: ``LIGHTNING_SLT_DATA=../shared/data .venv/bin/python benchmarks/sparse_inference.py``
(``--quick``: 200 sentences, one sparsity, 3 passes, no kernel survey). Prints one JSON line.
"""

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import warnings

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse BSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse CSC tensor support is in beta")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from _timing import cpu_description, interleaved_times, medians  # noqa: E402

from lightning_slt._runtime import configure_cpu  # noqa: E402
from lightning_slt.data.corpora import data_root, resolve_corpus  # noqa: E402
from lightning_slt.data.text import read_parallel  # noqa: E402
from lightning_slt.pruning import masks_from_zeros  # noqa: E402
from lightning_slt.export.sparse_linear import sparsify_  # noqa: E402
from lightning_slt.model.presets import transformer_base  # noqa: E402
from lightning_slt.model.search import greedy_search  # noqa: E402
from lightning_slt.model.transformer import Transformer  # noqa: E402
from lightning_slt.pruning import magnitude_masks  # noqa: E402


def load_model(checkpoint: str | None, vocab: int, tokenizer_vocab: int):
    """(Transformer, Tokenizer, description)."""
    if checkpoint:
        from lightning_slt.model.module import TranslationModule

        module = TranslationModule.load_from_checkpoint(checkpoint, map_location="cpu")
        return module.model.eval(), module.tokenizer, f"checkpoint {Path(checkpoint).name}"
    from lightning_slt.data.corpora import user_cache_dir
    from lightning_slt.data.tokenizer import train_tokenizer

    src, tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root()))
    tokenizer = train_tokenizer(src + tgt, user_cache_dir() / "spm", vocab_size=tokenizer_vocab)
    torch.manual_seed(0)
    model = Transformer(transformer_base(vocab)).eval()
    return model, tokenizer, f"transformer_base vocab {vocab}, random init (source ids from a {tokenizer_vocab}-piece spm)"


def prune_copy(model: Transformer, sparsity: float) -> Transformer:
    """A copy with every >= 2-dim tensor pruned layer-wise by magnitude to `sparsity`."""
    pruned = copy.deepcopy(model)
    params = {n: p for n, p in pruned.named_parameters() if p.dim() >= 2}
    current = masks_from_zeros({n: p.detach() for n, p in params.items()})
    masks = magnitude_masks({n: p.detach() for n, p in params.items()}, sparsity, current=current)
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask).add_(0.0)
    return pruned


def length_batches(sources: list[list[int]], batch_tokens: int, pad_id: int) -> list[tuple[list[int], torch.Tensor]]:
    """(sentence indices, (B, S) padded LongTensor) in ascending length, <= batch_tokens padded tokens."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    batches, current = [], []
    for i in order:
        if current and len(sources[i]) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    out = []
    for ids in batches:
        src = torch.full((len(ids), max(len(sources[i]) for i in ids)), pad_id, dtype=torch.long)
        for row, i in enumerate(ids):
            src[row, : len(sources[i])] = torch.tensor(sources[i])
        out.append((ids, src))
    return out


def decode_all(model: Transformer, batches, n: int) -> list[list[int]]:
    outputs: list[list[int]] = [[] for _ in range(n)]
    for ids, src in batches:
        for i, hyp in zip(ids, greedy_search(model, src)):
            outputs[i] = hyp
    return outputs


def ct2_vocabulary(model: Transformer, tokenizer) -> list[str]:
    """The tokenizer's pieces in id order, padded with unused tokens when the model is larger than
    the tokenizer (the random transformer_base: 33k rows, an 8k-piece spm)."""
    from lightning_slt.export.ctranslate2 import vocabulary_of

    vocabulary = vocabulary_of(tokenizer)
    return vocabulary + [f"<unused{i}>" for i in range(len(vocabulary), model.config.vocab_size)]


def ct2_folders(model: Transformer, tokenizer, vocabulary: list[str], folder: Path) -> dict[str, Path]:
    """float32 and int8 CTranslate2 folders of `model`."""
    from lightning_slt.export.ctranslate2 import export_ctranslate2

    source = SimpleNamespace(model=model, tokenizer=tokenizer)
    folders = {}
    for quantization in ("float32", "int8"):
        folders[quantization] = folder / quantization
        export_ctranslate2(source, folders[quantization], quantization=quantization, vocabulary=vocabulary)
    return folders


def ct2_decode_all(translator, batches, pieces: list[list[str]], limits: list[int], vocabulary: dict[str, int],
                   n: int) -> list[list[int]]:
    """Greedy CT2 output ids of every sentence, batch by batch as ``decode_all``, each cut to its own limit."""
    outputs: list[list[int]] = [[] for _ in range(n)]
    for ids, _ in batches:
        results = translator.translate_batch([pieces[i] for i in ids], beam_size=1, max_input_length=0,
                                             max_decoding_length=max(limits[i] for i in ids))
        for i, result in zip(ids, results):
            outputs[i] = [vocabulary[token] for token in result.hypotheses[0][:limits[i]]]
    return outputs


def kernel_survey(rows: int, sparsity: float, repeats: int) -> list[dict]:
    """Median ms of each torch sparse layout for x (rows, in) @ W^T, W of the model's shapes.

    Why CsrMatmul uses CSR with int32 indices as ``csr @ x.T``: every other layout torch offers
    on CPU is slower here (COO, CSC, BSR 8x8, dense @ sparse-transposed, int64 CSR).
    """
    import torch.nn.functional as F

    from lightning_slt.export.sparse_linear import CsrMatmul

    generator = torch.Generator().manual_seed(0)
    table = []
    for out_features, in_features in ((1536, 512), (2048, 512), (512, 2048), (33000, 512)):
        weight = torch.randn(out_features, in_features, generator=generator)
        weight *= torch.rand(weight.shape, generator=generator) >= sparsity
        x = torch.randn(rows, in_features, generator=generator)
        coo, csr64, csc = weight.to_sparse(), weight.to_sparse_csr(), weight.to_sparse_csc()
        bsr, csr_t = weight.to_sparse_bsr((8, 8)), weight.t().contiguous().to_sparse_csr()
        csr32 = CsrMatmul(weight)
        kernels = {
            "dense_linear": lambda: F.linear(x, weight),
            "csr_int32_csr@xT": lambda: csr32(x),
            "csr_int64_csr@xT": lambda: torch.sparse.mm(csr64, x.t()),
            "coo_coo@xT": lambda: torch.sparse.mm(coo, x.t()),
            "csc_csc@xT": lambda: torch.sparse.mm(csc, x.t()),
            "bsr8x8_bsr@xT": lambda: torch.sparse.mm(bsr, x.t()),
            "x@csr(W^T)": lambda: torch.mm(x, csr_t),
        }
        times = medians(interleaved_times(kernels, repeats))
        table.append({"shape": f"{out_features}x{in_features}", "rows": rows, "sparsity": sparsity,
                      **{name: round(v * 1e3, 3) for name, v in times.items()}})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="TranslationModule checkpoint (else random transformer_base)")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95])
    parser.add_argument("--sentences", type=int, default=1000, help="first N sentences of test2016")
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=("auto", "on"), default="auto")
    parser.add_argument("--vocab", type=int, default=33000)
    parser.add_argument("--tokenizer-vocab", type=int, default=8000)
    parser.add_argument("--no-ctranslate2", action="store_true", help="skip the CTranslate2 float32/int8 rows")
    parser.add_argument("--quick", action="store_true",
                        help="200 sentences, the first sparsity only, 3 passes, no kernel survey (a smoke run)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: on a shared machine, multi-threaded kernels wait on "
                             "descheduled threads, which swamps any difference between the kernels)")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.sparsities, args.repeats = min(args.sentences, 200), args.sparsities[:1], 3
    ctranslate2 = None
    if not args.no_ctranslate2:
        try:
            import ctranslate2
        except ImportError:
            print("ctranslate2 not installed: no CTranslate2 rows (pip install 'lightning_slt[ctranslate2]')",
                  file=sys.stderr)
    configure_cpu(reuse_freed_memory=True)
    torch.set_num_threads(args.threads)
    model, tokenizer, description = load_model(args.checkpoint, args.vocab, args.tokenizer_vocab)
    src_text, ref_text = read_parallel(*resolve_corpus("multi30k", "en-de", "test", root=data_root()))
    src_text, ref_text = src_text[: args.sentences], ref_text[: args.sentences]
    eos, limit = model.config.eos_id, model.config.max_positions
    sources = [ids[: limit - 1] + [eos] for ids in tokenizer.encode(src_text)]
    batches = length_batches(sources, args.batch_tokens, model.config.pad_id)
    rows = round(statistics.median(len(ids) for ids, _ in batches))
    encoder_rows = round(statistics.median(src.numel() for _, src in batches))
    if ctranslate2 is not None:
        from lightning_slt.export.ctranslate2 import length_limits

        vocabulary = ct2_vocabulary(model, tokenizer)
        pieces = [[vocabulary[i] for i in ids[:-1]] for ids in sources]  # CT2 appends eos itself
        limits = length_limits([len(ids) for ids in sources], 1.2, 10, limit)  # greedy_search's defaults
        token_ids = {token: i for i, token in enumerate(vocabulary)}
        workdir = tempfile.TemporaryDirectory(prefix="sparse_inference_ct2_")

    results = {}
    for sparsity in args.sparsities:
        dense = prune_copy(model, sparsity)
        sparse = copy.deepcopy(dense)
        start = time.perf_counter()
        choices = sparsify_(sparse, args.mode, rows=rows, encoder_rows=encoder_rows)
        setup_s = time.perf_counter() - start
        runners = {"dense": lambda: decode_all(dense, batches, len(sources)),
                   "sparse": lambda: decode_all(sparse, batches, len(sources))}
        if ctranslate2 is not None:
            folders = ct2_folders(dense, tokenizer, vocabulary, Path(workdir.name) / f"{sparsity:.2f}")
            for quantization, folder in folders.items():
                translator = ctranslate2.Translator(str(folder), device="cpu", compute_type=quantization,
                                                    inter_threads=1, intra_threads=args.threads)
                runners[f"ct2_{quantization}"] = (
                    lambda t=translator: ct2_decode_all(t, batches, pieces, limits, token_ids, len(sources)))
        outputs = {name: run() for name, run in runners.items()}  # also the warm-up pass
        seconds = interleaved_times(runners, args.repeats, warmup=0, rotate=True)  # each one first in turn
        speed = {name: len(sources) / value for name, value in medians(seconds).items()}
        bleu = {name: None for name in runners}
        if args.checkpoint:
            import sacrebleu

            for name in bleu:
                bleu[name] = round(sacrebleu.corpus_bleu(tokenizer.decode(outputs[name]), [ref_text]).score, 2)
        results[f"{sparsity:.2f}"] = {
            "sentences_per_s_dense": round(speed["dense"], 2),
            "sentences_per_s_sparse": round(speed["sparse"], 2),
            "speedup": round(speed["sparse"] / speed["dense"], 3),
            "pass_seconds": {name: [round(v, 2) for v in values] for name, values in seconds.items()},
            "outputs_differing": sum(a != b for a, b in zip(outputs["dense"], outputs["sparse"])),
            "bleu_dense": bleu["dense"],
            "bleu_sparse": bleu["sparse"],
            **({"ctranslate2": {
                **{f"sentences_per_s_{name}": round(speed[name], 2) for name in ("ct2_float32", "ct2_int8")},
                **{f"{name}_vs_dense": round(speed[name] / speed["dense"], 3) for name in ("ct2_float32", "ct2_int8")},
                **{f"{name}_vs_sparse": round(speed[name] / speed["sparse"], 3) for name in ("ct2_float32", "ct2_int8")},
                "int8_vs_float32": round(speed["ct2_int8"] / speed["ct2_float32"], 3),
                "pass_seconds": {name: [round(v, 2) for v in seconds[name]] for name in ("ct2_float32", "ct2_int8")},
                "outputs_differing_float32_vs_dense": sum(a != b for a, b in zip(outputs["dense"], outputs["ct2_float32"])),
                "outputs_differing_int8_vs_float32": sum(
                    a != b for a, b in zip(outputs["ct2_float32"], outputs["ct2_int8"])),
                "bleu_float32": bleu["ct2_float32"], "bleu_int8": bleu["ct2_int8"],
                "int8_bleu_cost": (round(bleu["ct2_float32"] - bleu["ct2_int8"], 2) if args.checkpoint else None),
                "model_bin_bytes": {q: (folders[q] / "model.bin").stat().st_size for q in folders},
            }} if ctranslate2 is not None else {}),
            "sparsify_seconds": round(setup_s, 2),
            "sparse_layers": f"{sum(c.sparse for c in choices)}/{len(choices)}",
            "layers": [
                {"name": c.name, "shape": f"{c.out_features}x{c.in_features}", "sparsity": c.sparsity, "rows": c.rows,
                 "dense_ms": c.dense_ms, "sparse_ms": c.sparse_ms, "winner": "sparse" if c.sparse else "dense"}
                for c in choices
            ],
        }
    print(json.dumps({
        "benchmark": "sparse_inference",
        "model": description,
        "data": f"multi30k test2016 en, first {len(sources)} sentences",
        "decoding": "greedy_search, max_len 1.2 * src + 10",
        "batch_tokens": args.batch_tokens, "batches": len(batches), "rows_median": rows,
        "encoder_rows_median": encoder_rows, "mode": args.mode, "repeats": args.repeats,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_description(),
        "ctranslate2": ctranslate2.__version__ if ctranslate2 is not None else None,
        "sparsity": results,
        "kernel_survey_ms": None if args.quick else kernel_survey(rows, args.sparsities[0], repeats=5),
    }))


if __name__ == "__main__":
    main()
