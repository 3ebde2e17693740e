"""A split's files and its tokenized pairs: the training filter and evaluation truncation.

Training drops pairs with an empty side (no piece on the source or the target line: an empty or
blank line, a one-sided gap in the corpus) and pairs longer than ``max_len`` pieces on either
side, and says how many in one line. Evaluation keeps every sentence and cuts it to fit the
position table, with a warning naming the files.

Decision: validation and test keep pairs with an empty side, with a warning naming their lines.
They are the reference set that scores are compared on: dropping lines would change the test set
and the hypotheses would no longer line up with the files' lines. An empty source is translated
like any other (its hypothesis file still has that line); an empty reference scores its
hypothesis as all wrong, as sacreBLEU does for the corpus. Prediction keeps every line too.
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
    """Tokenized training pairs, those with an empty side or longer than ``max_len`` pieces on
    either side dropped (counted in one log line, the empty ones by line number)."""
    src_ids = tokenizer.encode(src)
    tgt_ids = tokenizer.encode(tgt)
    empty = [i for i in range(len(src)) if not src_ids[i] or not tgt_ids[i]]
    long = [i for i in range(len(src)) if (src_ids[i] and tgt_ids[i])
            and (len(src_ids[i]) > max_len or len(tgt_ids[i]) > max_len)]
    dropped = set(empty) | set(long)
    keep = [i for i in range(len(src)) if i not in dropped]
    if not keep:
        if len(empty) == len(src):
            raise EmptyCorpusError(
                f"no training pair has text on both sides: each of the {len(src)} pairs has an empty (or blank) "
                "source or target line; check that the training files hold the sentences, one per line"
            )
        raise EmptyCorpusError(
            f"no training pair has at most max_len={max_len} pieces on both sides; raise max_len"
        )
    if dropped:
        reasons = []
        if long:
            reasons.append(f"{len(long)} longer than max_len={max_len} pieces")
        if empty:
            reasons.append(f"{len(empty)} with an empty source or target line ({_lines(empty)})")
        rank_zero_info(f"train: kept {len(keep)} of {len(src)} pairs; dropped {' and '.join(reasons)}")
    return EncodedPairs(
        [src_ids[i] for i in keep],
        [tgt_ids[i] for i in keep],
        [src[i] for i in keep],
        [tgt[i] for i in keep],
        keep,
    )


def eval_pairs(src: list[str], tgt: list[str], tokenizer: Tokenizer, max_positions: int, role: str,
               files: tuple[Path, Path]) -> EncodedPairs:
    """Every pair of a validation or test split, each side cut to ``max_positions - 1`` pieces.

    Pairs with an empty side are kept (see the module docstring), with a warning naming them.
    """
    src_ids = encode_truncated(tokenizer, src, max_positions, role, files)
    tgt_ids = encode_truncated(tokenizer, tgt, max_positions, role, files)
    empty = [i for i in range(len(src)) if not src_ids[i] or not tgt_ids[i]]
    if empty:
        rank_zero_warn(
            f"{role} ({', '.join(map(str, files))}): {len(empty)} of {len(src)} pairs have an empty source or target "
            f"line ({_lines(empty)}); they are kept, so that the scores are over the whole split and hypotheses stay "
            "line-aligned: an empty source is still translated, an empty reference scores its hypothesis as all "
            "wrong. Remove those lines from both files if they are gaps in the corpus"
        )
    return EncodedPairs(src_ids, tgt_ids, src, tgt, np.arange(len(src)))


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


def _lines(indices: list[int], shown: int = 10) -> str:
    """``line(s) 3, 5 and 2 more``: 1-based line numbers of 0-based indices, the first ``shown``."""
    listed = ", ".join(str(i + 1) for i in indices[:shown])
    return f"line(s) {listed}" + (f" and {len(indices) - shown} more" if len(indices) > shown else "")
