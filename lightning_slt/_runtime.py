"""Process-wide CPU settings that make training and decoding fast on CPUs.

Two settings, both measured on our 2-core machines (a VM, where page faults are costly):

- Denormal floats (tiny values near zero, common in attention softmax tails and in Adam's
  second moments) take a slow microcode path on x86; flushing them to zero made Transformer
  training 4x faster.
- glibc serves every allocation above 32 MiB with a fresh ``mmap`` and returns it on free, so
  each step's vocabulary-sized tensors (logits, their gradient: ~110 MiB each on
  transformer_cpu) are page-faulted in anew, step after step. Keeping freed memory in the heap
  for reuse made those tensors' ops 2-3x faster and a transformer_cpu training step 12 % faster
  (and nn.Transformer's, with its padded logits, up to 28 %). The price: the process keeps its
  peak heap instead of returning it to the OS. ``LIGHTNING_SLT_MALLOC=system`` opts out.

Called once by the CLI, the DataModule, the benchmarks and the tests.
"""

import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_configured = False


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


def configure_cpu() -> None:
    """Flush denormals to zero and keep freed heap memory; harmless on GPUs and other CPUs."""
    global _configured
    torch.set_flush_denormal(True)
    if not _configured:
        _reuse_freed_memory()
        _configured = True
