"""One tokenized split held in memory, and the collate function that pads it into batches.

A split is tokenized once (in ``TranslationDataModule.setup``) and kept as two flat int32
arrays plus offsets: compact, quick to pickle into DataLoader workers, and no tokenizer call
per batch. ``collate_translation`` is a top-level function so workers can pickle it.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_slt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


class Example(NamedTuple):
    """One item of an ``EncodedPairs``; target fields are None for source-only (predict) data."""

    index: int  # line number in the split's files (0-based)
    src_ids: np.ndarray
    tgt_ids: np.ndarray | None
    src_text: str
    ref_text: str | None


class EncodedPairs(Dataset):
    """Token ids and raw text of one split.

    Args:
        src_ids: piece ids per source sentence, without eos.
        tgt_ids: piece ids per target sentence, without bos/eos; None for source-only data.
        src_text: raw source sentences.
        ref_text: raw target sentences (the references for BLEU); None for source-only data.
        line_numbers: line of each example in the split's files (kept through filtering).
    """

    def __init__(
        self,
        src_ids: Sequence[Sequence[int]],
        tgt_ids: Sequence[Sequence[int]] | None,
        src_text: Sequence[str],
        ref_text: Sequence[str] | None,
        line_numbers: Sequence[int],
    ) -> None:
        self._src_flat, self._src_offsets = _flatten(src_ids)
        self._tgt = None if tgt_ids is None else _flatten(tgt_ids)
        self.src_text = list(src_text)
        self.ref_text = None if ref_text is None else list(ref_text)
        self.line_numbers = np.asarray(line_numbers, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.line_numbers)

    def __getitem__(self, i: int) -> Example:
        src = self._src_flat[self._src_offsets[i] : self._src_offsets[i + 1]]
        tgt = None
        if self._tgt is not None:
            flat, offsets = self._tgt
            tgt = flat[offsets[i] : offsets[i + 1]]
        ref = None if self.ref_text is None else self.ref_text[i]
        return Example(int(self.line_numbers[i]), src, tgt, self.src_text[i], ref)

    def padded_lengths(self) -> np.ndarray:
        """``(N, 2)`` lengths as collated: source + eos, bos + target (target 1 when absent)."""
        src = np.diff(self._src_offsets) + 1
        tgt = np.ones_like(src) if self._tgt is None else np.diff(self._tgt[1]) + 1
        return np.stack([src, tgt], axis=1)


def collate_translation(examples: Sequence[Example]) -> dict:
    """Pad examples into a batch dict (pad id 0).

    Returns:
        ``src`` (B, S) source ids + eos; ``tgt_in`` (B, T) bos + target ids; ``tgt_out`` (B, T)
        target ids + eos; ``src_text`` and ``ref_text`` lists of str; ``index`` (B,) line
        numbers. Source-only examples give only ``src``, ``src_text`` and ``index``.
    """
    batch_size = len(examples)
    src_width = max(len(example.src_ids) for example in examples) + 1
    src = np.full((batch_size, src_width), PAD_ID, dtype=np.int64)  # (B, S)
    for row, example in enumerate(examples):
        length = len(example.src_ids)
        src[row, :length] = example.src_ids
        src[row, length] = EOS_ID
    batch = {
        "src": torch.from_numpy(src),
        "src_text": [example.src_text for example in examples],
        "index": torch.tensor([example.index for example in examples], dtype=torch.long),  # (B,)
    }
    if examples[0].tgt_ids is None:
        return batch
    tgt_width = max(len(example.tgt_ids) for example in examples) + 1
    tgt_in = np.full((batch_size, tgt_width), PAD_ID, dtype=np.int64)  # (B, T)
    tgt_out = np.full((batch_size, tgt_width), PAD_ID, dtype=np.int64)  # (B, T)
    for row, example in enumerate(examples):
        length = len(example.tgt_ids)
        tgt_in[row, 0] = BOS_ID
        tgt_in[row, 1 : length + 1] = example.tgt_ids
        tgt_out[row, :length] = example.tgt_ids
        tgt_out[row, length] = EOS_ID
    batch["tgt_in"] = torch.from_numpy(tgt_in)
    batch["tgt_out"] = torch.from_numpy(tgt_out)
    batch["ref_text"] = [example.ref_text for example in examples]
    return batch


def _flatten(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ids (int32) and ``offsets`` with sequence i at ``flat[offsets[i]:offsets[i+1]]``."""
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum([len(sequence) for sequence in sequences], out=offsets[1:])
    flat = np.fromiter((i for sequence in sequences for i in sequence), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets
