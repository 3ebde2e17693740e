"""Tiny Transformers for the model tests: a 2 + 2-layer config of width 32, a seeded model in eval
mode, and right-padded batches of random word ids."""

import torch

from lightning_slt.model.transformer import Transformer, TransformerConfig

PAD, BOS, EOS = 0, 1, 2


def tiny_config(**overrides) -> TransformerConfig:
    fields = dict(vocab_size=40, d_model=32, n_heads=4, encoder_layers=2, decoder_layers=2, d_ff=48)
    return TransformerConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(tiny_config(**overrides)).eval()


def padded_batch(lengths: list[int], vocab: int = 40, seed: int = 1, start_bos: bool = False) -> torch.Tensor:
    """(B, max(lengths)) right-padded random word ids (>= 3)."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        batch[row, :length] = torch.randint(3, vocab, (length,), generator=generator)
        if start_bos:
            batch[row, 0] = BOS
    return batch
