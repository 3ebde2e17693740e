"""Process-wide CPU settings that make training and decoding fast on CPUs.

Denormal floats (tiny values near zero, common in attention softmax tails and in Adam's
second moments) take a slow microcode path on x86; flushing them to zero made Transformer
training 4x faster on our 2-core machines. Called once by the CLI, the DataModule and tests.
"""

import torch


def configure_cpu() -> None:
    """Flush denormals to zero; harmless on GPUs and on CPUs without the flag."""
    torch.set_flush_denormal(True)
