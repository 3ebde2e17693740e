"""Process-wide CPU settings that make training and decoding fast on CPUs.

Two settings, both measured on our 2-core machines (a VM, where page faults are costly):

- Denormal floats (tiny values near zero, common in attention softmax tails and in Adam's
  second moments) take a slow microcode path on x86; flushing them to zero made Transformer
  training 4x faster. Always on.
- glibc serves every allocation above 32 MiB with a fresh ``mmap`` and returns it on free, so
  each step's vocabulary-sized tensors (logits, their gradient: ~110 MiB each on
  transformer_cpu) are page-faulted in anew, step after step. Keeping freed memory in the heap
  for reuse made those tensors' ops 2-3x faster and a transformer_cpu training step 12 % faster
  (and nn.Transformer's, with its padded logits, up to 28 %). The price: the process keeps its
  peak heap instead of returning it to the OS, so this is for processes that do one job:
  ``lightning-slt`` turns it on (in every rank a DDP launcher starts too), the benchmarks do for both sides
  of each comparison, the library and the test suite do not (a library must not change its
  caller's allocator; a long test process would hold its peak). ``LIGHTNING_SLT_MALLOC=system``
  opts out everywhere.
"""

import ctypes
import ctypes.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_heap_reuse_applied = False


def _reuse_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; False if not glibc."""
    if sys.platform != "linux" or os.environ.get("LIGHTNING_SLT_MALLOC", "") == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, or no libc found: leave the allocator alone
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def configure_cpu(reuse_freed_memory: bool = False) -> None:
    """Flush denormals to zero; with `reuse_freed_memory`, keep freed heap memory (see above).

    Harmless on GPUs and on CPUs or C libraries without these knobs.
    """
    global _heap_reuse_applied
    torch.set_flush_denormal(True)
    if reuse_freed_memory and not _heap_reuse_applied:
        _heap_reuse_applied = _reuse_freed_memory()


_cleanup_registered = False


def destroy_gloo_group_at_exit() -> None:
    """Destroy a gloo process group while the interpreter is still alive, at exit (once per process).

    Lightning registers this for NCCL only. A gloo group left to interpreter finalization can
    abort the process (SIGABRT, "terminate called without an active exception": its worker
    threads still hold work objects whose tensors need the GIL, pytorch#179291); our 2-rank
    ddp_spawn tests did, at exit, in 4 of 6 full-suite runs. Called from ``setup`` hooks, after
    Lightning has initialised the group.
    """
    global _cleanup_registered
    if _cleanup_registered or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    if torch.distributed.get_backend() != "gloo":
        return
    import atexit

    def destroy() -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    atexit.register(destroy)
    _cleanup_registered = True


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return model, flags


def bf16_matmul_unit() -> str:
    """"AMX", "AVX512-BF16" or "none": what the CPU's oneDNN bf16 matmuls run on.

    ``ONEDNN_MAX_CPU_ISA`` below AMX (e.g. ``AVX512_CORE_BF16``, the way to emulate a CPU
    without AMX on one that has it) counts as no AMX, since oneDNN then does not use it.
    """
    flags = _cpu_model_and_flags()[1]
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if "amx_bf16" in flags and (isa in ("", "ALL", "DEFAULT") or "AMX" in isa):
        return "AMX"
    below_bf16 = isa not in ("", "ALL", "DEFAULT") and not any(name in isa for name in ("BF16", "AMX", "AVX10"))
    return "AVX512-BF16" if "avx512_bf16" in flags and not below_bf16 else "none"


def amx_state() -> str:
    """"available", "disabled" (the CPU has AMX, ``ONEDNN_MAX_CPU_ISA`` switches it off) or "absent"."""
    if bf16_matmul_unit() == "AMX":
        return "available"
    return "disabled" if "amx_bf16" in _cpu_model_and_flags()[1] else "absent"


def cpu_description() -> str:
    """"<model name>, <n> cores, bf16: AMX | AVX512-BF16 | none" for benchmark output: CPU models
    change between machines (AMX made bf16 steps 2.4x faster than AVX512-BF16 alone), so every
    figure is printed with the CPU it was measured on. An AMX CPU whose AMX is switched off
    (``ONEDNN_MAX_CPU_ISA``) reads "AVX512-BF16 (AMX disabled)"."""
    unit = bf16_matmul_unit() + (" (AMX disabled)" if amx_state() == "disabled" else "")
    return f"{_cpu_model_and_flags()[0]}, {os.cpu_count()} cores, bf16: {unit}"


CPU_BF16_ENV = "LIGHTNING_SLT_CPU_BF16"


def cpu_precision(precision: Any, accelerator: Any) -> tuple[Any, str | None]:
    """The precision a CPU run should train in, and why it differs from the one asked for.

    bf16 on a CPU without bf16 matmul instructions (neither AMX nor AVX512-BF16) is emulated:
    a 1024x1024 bf16 matmul ran at 0.7 GFLOP/s against fp32's 35.6 on an AVX2-only AMD EPYC, so a
    config written for bf16 CPUs (``conf/multi30k_cpu.yaml``) would train ~50x slower matmuls
    there. Such a run trains in ``32-true`` instead, with a warning; ``LIGHTNING_SLT_CPU_BF16=1``
    keeps bf16 (to check bf16 numerics on such a CPU).
    """
    on_cpu = str(accelerator) == "cpu" or (str(accelerator) == "auto" and not _accelerator_available())
    if not (on_cpu and str(precision).startswith("bf16")) or os.environ.get(CPU_BF16_ENV) == "1":
        return precision, None
    if bf16_matmul_unit() != "none":
        return precision, None
    return "32-true", (
        f"trainer.precision={precision} asks for bf16 matmuls, which this CPU ({_cpu_model_and_flags()[0]}: no AMX, "
        f"no AVX512-BF16) only emulates, ~50x slower than fp32: training in 32-true instead. Set "
        f"{CPU_BF16_ENV}=1 to keep {precision}, or set trainer.precision=32-true to silence this"
    )


def _accelerator_available() -> bool:
    return torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())
