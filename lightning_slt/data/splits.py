"""A split's files and its tokenized pairs: the training filter and evaluation truncation.

Training drops pairs longer than ``max_len`` pieces on either side; evaluation keeps every
sentence and cuts it to fit the position table, with a warning naming the files.
"""

from pathlib import Path

import numpy as np

from lightning_slt._lightning import rank_zero_info, rank_zero_warn
from lightning_slt.data.corpora import CORPORA, parse_pair
from lightning_slt.data.dataset import EncodedPairs
from lightning_slt.data.errors import EmptyCorpusError
from lightning_slt.data.text import read_monolingual
from lightning_slt.data.tokenizer import Tokenizer, truncation_warning


def check_has_train_split(corpus: str, pair: str) -> None:
    """Refuse training on an evaluation-only corpus, naming the two ways out."""
    canonical, _, _ = parse_pair(CORPORA[corpus], pair)
    if "train" not in CORPORA[corpus].splits_for(canonical):
        raise ValueError(
            f"corpus {corpus!r} has no train split (it is for evaluation only): pass "
            "train_files=[src, tgt] to train, or spm_model=<path> to only evaluate"
        )


def train_pairs(src: list[str], tgt: list[str], tokenizer: Tokenizer, max_len: int) -> EncodedPairs:
    """Tokenized training pairs, those longer than ``max_len`` pieces on either side dropped."""
    src_ids = tokenizer.encode(src)
    tgt_ids = tokenizer.encode(tgt)
    keep = [i for i in range(len(src)) if len(src_ids[i]) <= max_len and len(tgt_ids[i]) <= max_len]
    if not keep:
        raise EmptyCorpusError(
            f"no training pair has at most max_len={max_len} pieces on both sides; raise max_len"
        )
    if len(keep) < len(src):
        rank_zero_info(
            f"train: kept {len(keep)} of {len(src)} pairs; dropped {len(src) - len(keep)} longer than "
            f"max_len={max_len} pieces"
        )
    return EncodedPairs(
        [src_ids[i] for i in keep],
        [tgt_ids[i] for i in keep],
        [src[i] for i in keep],
        [tgt[i] for i in keep],
        keep,
    )


def eval_pairs(src: list[str], tgt: list[str], tokenizer: Tokenizer, max_positions: int, role: str,
               files: tuple[Path, Path]) -> EncodedPairs:
    """Every pair of a validation or test split, each side cut to ``max_positions - 1`` pieces."""
    return EncodedPairs(encode_truncated(tokenizer, src, max_positions, role, files),
                        encode_truncated(tokenizer, tgt, max_positions, role, files), src, tgt, np.arange(len(src)))


def predict_sources(predict_files: list[str] | None, tokenizer: Tokenizer, max_positions: int) -> EncodedPairs:
    """The source lines of ``predict_files``, in order, as one source-only split."""
    if not predict_files:
        raise ValueError("predict_dataloader needs predict_files=[source files] (YAML data.predict_files)")
    src = [line for path in predict_files for line in read_monolingual(path)]
    return EncodedPairs(encode_truncated(tokenizer, src, max_positions, "predict", predict_files), None, src, None,
                        np.arange(len(src)))


def encode_truncated(tokenizer: Tokenizer, texts: list[str], max_positions: int, role: str, files) -> list[list[int]]:
    """Encode, cutting sequences to ``max_positions - 1`` pieces (room for eos/bos)."""
    ids = tokenizer.encode(texts)
    limit = max_positions - 1
    warning = truncation_warning(f"{role} ({', '.join(map(str, files))})", [len(s) for s in ids], limit)
    if warning:
        rank_zero_warn(warning + "; their scores will suffer")
    return [sequence[:limit] for sequence in ids]
