"""Ticket file size vs the dense fp32 state_dict, at 50 / 90 / 98 % layer-wise magnitude sparsity.

Model: ``Transformer(transformer_base(33000))`` (the paper's 61M-parameter shape, random init:
magnitude masks of a random init are as random as masks get, the hardest case for the mask
coder). Masks: ``lightning_slt.pruning.magnitude_masks(..., scope="layerwise")`` over every
>= 2-dim tensor. Dense reference: the size of ``torch.save(state_dict)``.

Reported per sparsity: weight payload / dense file (fp32 and fp16 values), the whole file with
and without the tokenizer (a sentencepiece model trained on Multi30k train, 8k pieces, cached),
bits per mask entry vs the entropy floor and vs one bit, and load time (median of interleaved
repetitions of ``read_ticket`` and ``torch.load`` of the dense file), plus mask decode speed.

Run: ``LIGHTNING_SLT_DATA=../shared/data .venv/bin/python benchmarks/ticket_size.py``.
Prints one JSON line.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from _timing import interleaved_times, medians  # noqa: E402

from lightning_slt._runtime import configure_cpu  # noqa: E402
from lightning_slt.artifacts.mask_codec import decode_mask, encode_mask, entropy_bits_per_entry  # noqa: E402
from lightning_slt.artifacts.ticket import read_ticket, write_ticket  # noqa: E402
from lightning_slt.model.presets import transformer_base  # noqa: E402
from lightning_slt.model.transformer import Transformer  # noqa: E402
from lightning_slt.pruning import magnitude_masks, prunable_parameters  # noqa: E402

SPARSITIES = (0.5, 0.9, 0.98)


def tokenizer_proto(vocab_size: int) -> tuple[bytes, str]:
    """A real sentencepiece model: trained on Multi30k train (en + de), cached in the user cache."""
    from lightning_slt.data.corpora import data_root, resolve_corpus, user_cache_dir
    from lightning_slt.data.text import read_parallel
    from lightning_slt.data.tokenizer import train_tokenizer

    src, tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root()))
    tokenizer = train_tokenizer(src + tgt, user_cache_dir() / "spm", vocab_size=vocab_size)
    return tokenizer.model_proto, f"sentencepiece unigram {vocab_size} on multi30k train en+de"


def timed_medians(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run interleaved `repeats` times after one warm-up."""
    return medians(interleaved_times(functions, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=33000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer-vocab", type=int, default=8000)
    args = parser.parse_args()
    configure_cpu(reuse_freed_memory=True)
    torch.manual_seed(0)
    model = Transformer(transformer_base(args.vocab))
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    prunable = {name: state[name] for name in prunable_parameters(model)}
    proto, tokenizer_desc = tokenizer_proto(args.tokenizer_vocab)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dense_path = Path(tmp) / "dense.pt"
        torch.save(state, dense_path)
        dense_bytes = dense_path.stat().st_size
        for sparsity in SPARSITIES:
            masks = magnitude_masks(prunable, sparsity, scope="layerwise")
            pruned = dict(state)
            for name, mask in masks.items():
                pruned[name] = state[name] * mask + 0.0
            ticket_path = Path(tmp) / f"s{sparsity}.ticket"
            sizes = write_ticket(ticket_path, pruned, masks, {"preset": "transformer_base"}, proto, "float32")
            fp16 = write_ticket(Path(tmp) / "fp16.ticket", pruned, masks, {}, proto, "float16")
            no_tok = write_ticket(Path(tmp) / "notok.ticket", pruned, masks, {}, proto, "float32", embed_tokenizer=False)
            entries = sum(mask.numel() for mask in masks.values())
            floor_bits = sum(entropy_bits_per_entry(float(m.float().mean())) * m.numel() for m in masks.values())
            encoded = [encode_mask(mask) for mask in masks.values()]
            times = timed_medians({
                "read_ticket": lambda: read_ticket(ticket_path),
                "torch_load_dense": lambda: torch.load(dense_path, weights_only=True),
                "decode_masks": lambda: [decode_mask(e) for e in encoded],
            }, args.repeats)
            ticket = read_ticket(ticket_path)
            assert all(torch.equal(ticket.state_dict[n], t) for n, t in pruned.items())  # bit-identical check
            one_bit_payload = sizes["values"] + sizes["dense"] + entries / 8
            results[f"{sparsity:.2f}"] = {
                "payload_ratio_fp32": round(sizes["payload"] / dense_bytes, 4),
                "payload_ratio_fp16": round(fp16["payload"] / dense_bytes, 4),
                "payload_ratio_one_bit_mask": round(one_bit_payload / dense_bytes, 4),
                "payload_ratio_entropy_floor": round((sizes["values"] + sizes["dense"] + floor_bits / 8) / dense_bytes, 4),
                "file_ratio_with_tokenizer": round(sizes["file"] / dense_bytes, 4),
                "file_ratio_without_tokenizer": round(no_tok["file"] / dense_bytes, 4),
                "bytes": {"file": sizes["file"], "payload": sizes["payload"], "values": sizes["values"],
                          "masks": sizes["masks"], "dense_tensors": sizes["dense"], "header": sizes["header"],
                          "tokenizer": sizes["tokenizer"], "file_without_tokenizer": no_tok["file"]},
                "mask_bits_per_entry": round(8 * sizes["masks"] / entries, 4),
                "mask_entropy_floor_bits_per_entry": round(floor_bits / entries, 4),
                "load_s_read_ticket": round(times["read_ticket"], 3),
                "load_s_torch_load_dense": round(times["torch_load_dense"], 3),
                "mask_decode_Mentries_per_s": round(entries / times["decode_masks"] / 1e6, 1),
                "mask_decode_coded_MB_per_s": round(sizes["masks"] / times["decode_masks"] / 1e6, 1),
                "ticket_read_MB_per_s": round(sizes["file"] / times["read_ticket"] / 1e6, 1),
            }
    print(json.dumps({
        "benchmark": "ticket_size",
        "model": f"transformer_base vocab {args.vocab} (random init), {sum(t.numel() for t in state.values())} parameters",
        "masks": "layer-wise magnitude (lightning_slt.pruning.magnitude_masks) of every >= 2-dim tensor",
        "dense_state_dict_bytes": dense_bytes,
        "tokenizer": tokenizer_desc,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "sparsity": results,
    }))


if __name__ == "__main__":
    main()
