"""Training throughput of our TranslationModule vs a plain PyTorch loop around nn.Transformer.

Both models have the CPU config's sizes (d_model 256, 4 heads, 3 + 3 layers, FFN 1024, pre-norm,
dropout 0.1, 8k joint sentencepiece vocabulary) and train on the same token-bucketed Multi30k
batches (max_tokens 4096) with Adam, label smoothing 0.1, the same thread count and flush-denormal
setting; steps alternate between the two models and medians are reported. The baseline is what a
user would write: torch.nn.Transformer(batch_first=True, norm_first=True), a shared embedding
scaled by sqrt(d), sinusoidal positions, key-padding and causal masks, and the output projection
plus loss over every target position (cross_entropy(ignore_index=pad)).

Tokens/s counts non-padding target tokens. Model FLOP utilisation (MFU) = the FLOPs a step does
(counted by torch.utils.flop_counter on that model's own step: forward + backward) / step time /
the fp32 matmul FLOP/s measured in this process (median of square 2048 GEMMs).

Prints one JSON line. Usage: python benchmarks/train_throughput.py [--steps 12] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightning_slt import TranslationDataModule, TranslationModule
from lightning_slt._runtime import configure_cpu

PAD = 0


class TorchTransformerMT(nn.Module):
    """The baseline: nn.Transformer with a tied embedding, as a user would assemble it."""

    def __init__(self, vocab: int, d_model=256, heads=4, layers=3, d_ff=1024, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, 0, d_model**-0.5)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, d_ff, dropout, batch_first=True, norm_first=True)
        position = torch.arange(1024).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(1024, d_model)
        table[:, 0::2], table[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("positions", table, persistent=False)
        self.scale = d_model**0.5

    def _in(self, tokens):
        return self.embed(tokens) * self.scale + self.positions[: tokens.size(1)]

    def loss(self, batch):
        src, tgt_in, tgt_out = batch["src"], batch["tgt_in"], batch["tgt_out"]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1), dtype=torch.bool)
        hidden = self.transformer(self._in(src), self._in(tgt_in), tgt_mask=causal, src_key_padding_mask=src.eq(PAD),
                                  tgt_key_padding_mask=tgt_in.eq(PAD), memory_key_padding_mask=src.eq(PAD), tgt_is_causal=True)
        logits = F.linear(hidden, self.embed.weight)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=0.1)


def _ours_loss(module):
    def loss(batch):
        token_loss, _, _ = module._token_losses(batch)
        return token_loss.sum() / token_loss.numel()
    return loss


def _step(loss_fn, optimizer, batch) -> float:
    start = time.perf_counter()
    loss_fn(batch).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _flops(loss_fn, batch) -> int:
    with FlopCounterMode(display=False) as counter:
        loss_fn(batch).backward()
    return counter.get_total_flops()


def matmul_flops_per_s(n: int = 2048, repeats: int = 7) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    configure_cpu()
    torch.manual_seed(0)
    data = TranslationDataModule(corpus="multi30k", vocab_size=8000, max_tokens=args.max_tokens)
    data.setup("fit")
    loader = iter(data.train_dataloader())
    batches = [{k: v for k, v in next(loader).items() if isinstance(v, torch.Tensor)} for _ in range(args.warmup + args.steps)]
    ours = TranslationModule.from_preset("transformer_cpu", vocab_size=data.vocab_size)
    base = TorchTransformerMT(data.vocab_size)
    models = {"ours": (_ours_loss(ours), torch.optim.AdamW(ours.parameters(), lr=1e-4)),
              "torch_nn_transformer": (base.loss, torch.optim.Adam(base.parameters(), lr=1e-4))}
    ours.train(), base.train()
    peak = matmul_flops_per_s()
    times = {name: [] for name in models}
    flops = {name: [] for name in models}
    tokens = []
    for i, batch in enumerate(batches):
        for name, (loss_fn, optimizer) in models.items():
            elapsed = _step(loss_fn, optimizer, batch)
            if i >= args.warmup:
                times[name].append(elapsed)
        if i >= args.warmup:
            tokens.append(int(batch["tgt_out"].ne(PAD).sum()))
            if len(flops["ours"]) < 3:
                for name, (loss_fn, optimizer) in models.items():
                    flops[name].append(_flops(loss_fn, batch) / tokens[-1])
                    optimizer.zero_grad(set_to_none=True)
    result = {"benchmark": "train_throughput", "threads": torch.get_num_threads(), "flush_denormal": True,
              "batches": args.steps, "max_tokens": args.max_tokens, "matmul_gflops": round(peak / 1e9, 1)}
    for name in models:
        per_token_flops = statistics.median(flops[name])
        tokens_per_s = [t / s for t, s in zip(tokens, times[name])]
        tps = statistics.median(tokens_per_s)
        result[name] = {"tokens_per_s": round(tps, 1), "median_step_s": round(statistics.median(times[name]), 4),
                        "flops_per_target_token": round(per_token_flops), "mfu": round(tps * per_token_flops / peak, 4)}
    result["speedup_tokens_per_s"] = round(result["ours"]["tokens_per_s"] / result["torch_nn_transformer"]["tokens_per_s"], 3)
    result["goal"] = "speedup >= 1.5 and ours.mfu >= 0.45"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
