"""Evaluation records: one per sentence, gathered from every DDP rank, scored once per split.

A record keeps what corpus-level metrics need from a sentence (its hypothesis and reference)
and the sums that give token-level loss and nll. Scores are computed over the whole split
after gathering, dropping the duplicates a distributed sampler pads with (same ``index``).
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_slt.model.metrics import TranslationScores, score_translations


@dataclass(frozen=True, order=True)
class EvalRecord:
    """One evaluated sentence; records sort by ``index`` (its line in the split)."""

    index: int
    hypothesis: str
    reference: str
    loss: float  # summed over the sentence's target tokens
    nll: float  # likewise
    tokens: int  # non-padding target tokens


@dataclass(frozen=True)
class EvalSummary:
    """A split's unique records (by index, ascending), its scores and the values logged."""

    records: list[EvalRecord]
    scores: TranslationScores
    values: dict[str, float]  # {f"{prefix}/loss", .../nll, .../bleu, .../chrf, .../ter}


def sentence_records(indices: list[int], hypotheses: list[str], references: list[str], loss: Tensor, nll: Tensor,
                     target_mask: Tensor) -> list[EvalRecord]:
    """Records of a batch from per-token loss and nll (N,) over the True entries of target_mask (B, T)."""
    per_token = torch.zeros(target_mask.shape, dtype=loss.dtype, device=loss.device)  # (B, T)
    sentence_loss = per_token.masked_scatter(target_mask, loss).sum(dim=1)  # (B,)
    sentence_nll = per_token.masked_scatter(target_mask, nll).sum(dim=1)  # (B,)
    sentence_tokens = target_mask.sum(dim=1)  # (B,)
    return [EvalRecord(int(index), hypotheses[i], references[i], float(sentence_loss[i]), float(sentence_nll[i]),
                       int(sentence_tokens[i]))
            for i, index in enumerate(indices)]


def gather_objects(records: list, world_size: int) -> list:
    """Concatenate every rank's ``records`` (same order on every rank)."""
    if world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return list(records)
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, records)
    return [record for rank_records in gathered for record in rank_records]


def summarize(records: list[EvalRecord], world_size: int, prefix: str) -> EvalSummary:
    """Gather all ranks' records, drop duplicates by index, score them; values named ``{prefix}/*``."""
    gathered = gather_objects(records, world_size)
    unique = sorted({record.index: record for record in gathered}.values())  # by line index
    scores = score_translations([record.hypothesis for record in unique], [record.reference for record in unique])
    n_tokens = sum(record.tokens for record in unique)
    values = {
        f"{prefix}/loss": sum(record.loss for record in unique) / max(n_tokens, 1),
        f"{prefix}/nll": sum(record.nll for record in unique) / max(n_tokens, 1),
        f"{prefix}/bleu": scores.bleu,
        f"{prefix}/chrf": scores.chrf,
        f"{prefix}/ter": scores.ter,
    }
    return EvalSummary(unique, scores, values)
