"""Training throughput of our TranslationModule vs a plain PyTorch loop around nn.Transformer.

Both models have the CPU config's sizes (d_model 256, 4 heads, 3 + 3 layers, FFN 1024, pre-norm,
dropout 0.1, 8k joint sentencepiece vocabulary) and train on the same token-bucketed Multi30k
batches (max_tokens 4096) with Adam, label smoothing 0.1, the same thread count, flush-denormal
and allocator settings (``configure_cpu``); steps alternate between the two models and medians
are reported. Each side has its own optimizer set-up: ours the module's (fused AdamW), the
baseline torch.optim.Adam's default. The baseline is what a
user would write: torch.nn.Transformer(batch_first=True, norm_first=True), a shared embedding
scaled by sqrt(d), sinusoidal positions, key-padding and causal masks, and the output projection
plus loss over every target position (cross_entropy(ignore_index=pad)).

Timing starts in steady state: every model first takes one untimed pass over all the batches
(``--warmup-passes``), so the heap has grown to its peak and no timed step pays page faults for
memory a larger earlier batch would have mapped (with three models interleaved and no warm-up
pass, the first steps of the shortest step paid ~2,000 minor faults each and ran 25 % slow: an
artefact of the first minute of a run, not of the model). Ours and the baseline on the same
batches are timed interleaved first; the baseline on padded user batches, whose heap peaks are
3-4x larger, after them on its own (interleaved with them, its peaks were trimmed and faulted
in again inside the other baseline's timed steps: 151k minor faults a step on an AVX2-only
EPYC). Minor page faults per timed step are reported so this stays checked.

Tokens/s counts non-padding target tokens. Model FLOP utilisation (MFU) = the FLOPs a step does
(counted by torch.utils.flop_counter on that model's own step: forward + backward) / step time /
the fp32 matmul FLOP/s measured in this process (median of square 2048 GEMMs).

``gemm_share`` is the fraction of each model's step spent in GEMMs (torch.profiler, three
untimed steps after the timed ones); ``speedup_ceiling_gemms_only`` = the speedup over the same
batches / our GEMM share: what ours would reach if everything but its GEMMs cost nothing. Where
the CPU config trains in fp32 (no bf16 matmul unit), both models' GEMMs are the same MKL work at
the same speed, so that ceiling is the most any change outside the GEMMs can give.

Two baselines: the same token-bucketed batches as ours ("same_batches"), and what a plain loop
usually feeds it ("user_batches": shuffled sentences, the same number per batch as ours, padded
to the longest), since bucketing is part of what we do to avoid padding waste.
Precision: the CPU config (``conf/multi30k_cpu.yaml``) trains with ``precision="bf16-mixed"``,
so the default runs both models under CPU bf16 autocast (matmuls in bf16 on AMX, the rest in
fp32), except on a CPU without a bf16 matmul unit (no AMX, no AVX512-BF16), where bf16 is
emulated ~50x slower and the config trains in 32-true (``_runtime.cpu_precision``): there the
default is fp32. ``--precision fp32`` runs both in fp32 anywhere. ``mfu`` is always against the fp32 matmul
FLOP/s (the definition the project tracks); in bf16 ``mfu_vs_bf16_peak`` is also given, against
the bf16 matmul FLOP/s, which is ~7x the fp32 one on this CPU.

Every line names the CPU, whether its bf16 matmuls run on AMX (available, disabled through
``ONEDNN_MAX_CPU_ISA``, or absent), and both matmul peaks: the speedup depends on the CPU kind
(1.72-1.78x with AMX, where the GEMMs are cheap and the rest of the step shows; without AMX the
GEMMs, the same work on both sides, run at the bf16 peak and take ~2/3 of our step). To see a
CPU with AMX as one without: ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` (checked by the bf16 peak
it then prints).

``--fit N`` times the real command instead: N steps of ``lightning-slt fit --config
conf/multi30k_cpu.yaml`` (startup excluded; data loading, logging and the step-200 checkpoint
included, see ``_timing.StepTimes``), beside our benchmark step timed alone in this process
before and after it, and prints their ratio (goal <= 1.1).

Prints one JSON line. Usage: python benchmarks/train_throughput.py [--steps 12] [--warmup-passes 1] [--precision bf16|fp32] [--fit N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightning_slt import TranslationDataModule, TranslationModule
from lightning_slt._runtime import amx_state, bf16_matmul_unit, configure_cpu, cpu_description

REPO = Path(__file__).resolve().parents[1]

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


def _step(loss_fn, optimizer, batch, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _flops(loss_fn, batch) -> int:
    with FlopCounterMode(display=False) as counter:
        loss_fn(batch).backward()
    return counter.get_total_flops()


# The ops whose own time is a matrix product (torch.profiler names); SDPA's fused kernels do
# their small GEMMs inside and count as the rest of the step.
GEMM_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm"})


def gemm_share(loss_fn, optimizer, batches: list[dict], bf16: bool) -> float:
    """Fraction of a step's time spent inside GEMMs, by torch.profiler over ``batches`` (untimed steps).

    It bounds what any change outside the GEMMs can buy: a model whose GEMMs are the same work
    as the baseline's, at the same library's speed, cannot be faster than the baseline's step
    over its own GEMM time, however cheap everything else becomes. The profiler's own overhead
    falls on the many small ops, so the share reads if anything low and that ceiling high.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            _step(loss_fn, optimizer, batch, bf16)
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    return sum(event.self_cpu_time_total for event in events if event.key in GEMM_OPS) / total


def _user_batches(data, like: list[dict]) -> list[dict]:
    """Shuffled sentences, as many per batch as ours, padded to the longest: a plain loop's batches."""
    from lightning_slt.data.dataset import collate_translation

    dataset = data.dataset("train")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    out, start = [], 0
    for batch in like:
        size = batch["src"].size(0)
        collated = collate_translation([dataset[i] for i in order[start : start + size]])
        out.append({k: v for k, v in collated.items() if isinstance(v, torch.Tensor)})
        start += size
    return out


def matmul_flops_per_s(n: int = 2048, repeats: int = 7, dtype=torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def machine(bf16_peak: float, fp32_peak: float) -> dict:
    """The CPU, its bf16 matmul unit and both matmul peaks, for every line this benchmark prints."""
    return {"cpu": cpu_description(), "amx": amx_state(), "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "threads": torch.get_num_threads(), "matmul_gflops_fp32": round(fp32_peak / 1e9, 1),
            "matmul_gflops_bf16": round(bf16_peak / 1e9, 1)}


def _alone(loss_fn, optimizer, batches, bf16: bool) -> dict:
    """Median step and target tokens/s of one model on its own, after one untimed pass."""
    times, rates = [], []
    for timed in (False, True):
        for batch in batches:
            elapsed = _step(loss_fn, optimizer, batch, bf16)
            if timed:
                times.append(elapsed)
                rates.append(int(batch["tgt_out"].ne(PAD).sum()) / elapsed)
    return {"median_step_s": round(statistics.median(times), 4), "tokens_per_s": round(statistics.median(rates), 1)}


def fit_mode(args, batches, bf16: bool, vocab_size: int) -> dict:
    """N steps of the real ``lightning-slt fit`` beside our benchmark step timed alone before and after.

    ``batches`` are the run's own first batches (the loader's order under the config's seed):
    the step's cost depends on the batch (tokens, lengths), so both sides time the same ones
    and are compared per target token as well as per step.
    """
    ours = TranslationModule.from_preset("transformer_cpu", vocab_size=vocab_size)
    ours.train()
    loss_fn, optimizer = _ours_loss(ours), ours.configure_optimizers()["optimizer"]
    before = _alone(loss_fn, optimizer, batches, bf16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "steps.json"
        command = [sys.executable, "-m", "lightning_slt.cli", "fit", "--config", str(REPO / "conf/multi30k_cpu.yaml"),
                   f"--trainer.max_steps={args.fit}", "--trainer.enable_progress_bar=false",
                   f"--trainer.logger.init_args.save_dir={tmp}", f"--trainer.default_root_dir={tmp}",
                   "--trainer.callbacks+=_timing.StepTimes", f"--trainer.callbacks.path={path}"]
        if not bf16:
            command.append("--trainer.precision=32-true")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"lightning-slt fit failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
        record = json.loads(path.read_text())
    after = _alone(loss_fn, optimizer, batches, bf16)
    seconds, tokens = record["step_seconds"][4:], record["target_tokens"][4:]  # steps 6.. (warm)
    bench_step = (before["median_step_s"] + after["median_step_s"]) / 2
    bench_tps = (before["tokens_per_s"] + after["tokens_per_s"]) / 2
    fit_tps = sum(tokens) / sum(seconds)
    return {"benchmark": "train_throughput_fit", "precision": args.precision, "fit_steps_timed": len(seconds),
            "fit": {"mean_step_s": round(statistics.mean(seconds), 4), "median_step_s": round(statistics.median(seconds), 4),
                    "max_step_s": round(max(seconds), 4), "tokens_per_s": round(fit_tps, 1)},
            "benchmark_step_alone": {"before": before, "after": after},
            "fit_mean_step_over_benchmark_step": round(statistics.mean(seconds) / bench_step, 3),
            "benchmark_tokens_per_s_over_fit": round(bench_tps / fit_tps, 3),
            "goal": "fit step <= 1.1x the benchmark step"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup-passes", type=int, default=1,
                        help="untimed passes over all the batches before the timed one (steady-state heap)")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="bf16: CPU autocast, as the CPU config's bf16-mixed; fp32: no autocast; auto (default): "
                             "what the CPU config trains in here, bf16 unless the CPU has no bf16 matmul unit")
    parser.add_argument("--fit", type=int, default=0, metavar="N",
                        help="time N steps of the real lightning-slt fit of conf/multi30k_cpu.yaml instead")
    args = parser.parse_args()
    if args.precision == "auto":  # as lightning_slt._runtime.cpu_precision trains bf16-mixed configs
        args.precision = "fp32" if bf16_matmul_unit() == "none" else "bf16"
    configure_cpu(reuse_freed_memory=True)
    torch.manual_seed(0)
    data = TranslationDataModule(corpus="multi30k", vocab_size=8000, max_tokens=args.max_tokens)
    data.setup("fit")
    loader = iter(data.train_dataloader())
    count = max(args.steps, min(args.fit, 60))  # --fit: the run's own first batches, up to 60
    batches = [{k: v for k, v in next(loader).items() if isinstance(v, torch.Tensor)} for _ in range(count)]
    bf16 = args.precision == "bf16"
    # fp32, bf16; emulated bf16 (no AMX, no AVX512-BF16) runs ~50x slower: a smaller GEMM for its peak
    emulated = bf16_matmul_unit() == "none"
    peak = matmul_flops_per_s()
    peak_bf16 = matmul_flops_per_s(1024, 3, torch.bfloat16) if emulated else matmul_flops_per_s(dtype=torch.bfloat16)
    if args.fit:
        print(json.dumps({**fit_mode(args, batches, bf16, data.vocab_size), **machine(peak_bf16, peak)}))
        return
    user = _user_batches(data, batches)
    ours = TranslationModule.from_preset("transformer_cpu", vocab_size=data.vocab_size)
    base = TorchTransformerMT(data.vocab_size)
    base_opt = torch.optim.Adam(base.parameters(), lr=1e-4)
    # (loss, optimizer, batches): the baseline trains on ours and on a plain loop's batches
    models = {"ours": (_ours_loss(ours), ours.configure_optimizers()["optimizer"], batches),
              "torch_same_batches": (base.loss, base_opt, batches),
              "torch_user_batches": (base.loss, base_opt, user)}
    ours.train(), base.train()
    times = {name: [] for name in models}
    flops = {name: [] for name in models}
    tokens = {name: [] for name in models}
    faults = {name: [] for name in models}
    # Ours and the same-batch baseline interleaved, then the padded user batches alone (docstring: why)
    for phase in (("ours", "torch_same_batches"), ("torch_user_batches",)):
        for timed in [False] * args.warmup_passes + [True]:
            for i in range(len(batches)):
                for name in phase:
                    loss_fn, optimizer, feed = models[name]
                    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                    elapsed = _step(loss_fn, optimizer, feed[i], bf16)
                    if timed:
                        faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
                        times[name].append(elapsed)
                        tokens[name].append(int(feed[i]["tgt_out"].ne(PAD).sum()))
                        if len(flops[name]) < 3:
                            flops[name].append(_flops(loss_fn, feed[i]) / tokens[name][-1])
                            optimizer.zero_grad(set_to_none=True)
    result = {"benchmark": "train_throughput", "precision": args.precision, **machine(peak_bf16, peak),
              "flush_denormal": True, "batches": args.steps, "warmup_passes": args.warmup_passes, "max_tokens": args.max_tokens}
    for name in models:
        per_token_flops = statistics.median(flops[name])
        tps = statistics.median([t / s for t, s in zip(tokens[name], times[name])])
        result[name] = {"tokens_per_s": round(tps, 1), "median_step_s": round(statistics.median(times[name]), 4),
                        "flops_per_target_token": round(per_token_flops), "mfu": round(tps * per_token_flops / peak, 4),
                        "median_minor_faults_per_step": statistics.median(faults[name])}
        if bf16:
            result[name]["mfu_vs_bf16_peak"] = round(tps * per_token_flops / peak_bf16, 4)
    for name in ("torch_same_batches", "torch_user_batches"):
        result[f"speedup_vs_{name}"] = round(result["ours"]["tokens_per_s"] / result[name]["tokens_per_s"], 3)
    # The ceiling: ours with every non-GEMM op free, GEMMs at the speed they ran (profiled after timing)
    for name in ("ours", "torch_same_batches"):
        loss_fn, optimizer, feed = models[name]
        result[name]["gemm_share"] = round(gemm_share(loss_fn, optimizer, feed[:3], bf16), 3)
    result["speedup_ceiling_gemms_only"] = round(result["speedup_vs_torch_same_batches"] / result["ours"]["gemm_share"], 3)
    # a model that page-faults in its timed steps is not in steady state (its heap was still
    # growing, or was trimmed and grown again); such a line does not count
    result["steady_state"] = all(result[name]["median_minor_faults_per_step"] == 0 for name in ("ours", "torch_same_batches"))
    result["goal"] = "speedup >= 1.5 (without AMX; 1.72 with), in steady state"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
