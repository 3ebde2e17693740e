"""Raw-text translation: tokenize, batch by length under a token budget, search, detokenize.

Sources are built as the datamodule builds them (pieces, then eos, cut to fit the position
table), sorted by length so that a batch wastes little padding, and returned in input order.
"""

import warnings

import torch

from lightning_slt.data.tokenizer import Tokenizer, truncation_warning
from lightning_slt.model.compat import require_tokenizer
from lightning_slt.model.search import best_hypotheses
from lightning_slt.model.transformer import Transformer


def encode_sources(tokenizer: Tokenizer, sentences: list[str], max_positions: int, eos_id: int) -> list[list[int]]:
    """Source token ids: pieces, then eos, truncated to ``max_positions`` (with a warning)."""
    encoded = tokenizer.encode(sentences)
    warning = truncation_warning("translate input", [len(ids) for ids in encoded], max_positions - 1)
    if warning:
        warnings.warn(warning, stacklevel=4)  # the caller of TranslationModule.translate
    return [ids[:max_positions - 1] + [eos_id] for ids in encoded]


def length_batches(order: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Split ``order`` (indices sorted by length) into runs of at most ``max_tokens`` padded tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending lengths, so sentence i sets the batch width
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def translate_sentences(model: Transformer, tokenizer: Tokenizer | None, sentences: list[str], beam_size: int,
                        length_penalty: float, max_len_a: float, max_len_b: int, max_tokens: int,
                        device: torch.device) -> list[str]:
    """Detokenized translations of ``sentences``, in their order; see ``TranslationModule.translate``.

    Raises:
        ValueError: ``max_tokens`` < 1.
        RuntimeError: no tokenizer (checked after the arguments, and only for a non-empty input).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not sentences:
        return []
    tokenizer = require_tokenizer(tokenizer)
    config = model.config
    sources = encode_sources(tokenizer, sentences, config.max_positions, config.eos_id)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: list[str] = [""] * len(sources)
    for batch_ids in length_batches(order, [len(s) for s in sources], max_tokens):
        width = max(len(sources[i]) for i in batch_ids)
        src = torch.full((len(batch_ids), width), config.pad_id, dtype=torch.long)  # (B, S)
        for row, i in enumerate(batch_ids):
            src[row, :len(sources[i])] = torch.tensor(sources[i], dtype=torch.long)
        hyps = best_hypotheses(model, src.to(device), beam_size, length_penalty, max_len_a, max_len_b)
        for i, text in zip(batch_ids, tokenizer.decode(hyps)):
            outputs[i] = text
    return outputs
