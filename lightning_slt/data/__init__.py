"""Data pipeline: corpus registry and downloader, parallel text reading, joint sentencepiece,
token-bucketed batching and the ``TranslationDataModule`` that ties them together."""

from lightning_slt.data.batching import TokenBucketBatchSampler
from lightning_slt.data.corpora import (
    CORPORA,
    DATA_ENV_VAR,
    data_root,
    download_corpus,
    resolve_corpus,
    user_cache_dir,
)
from lightning_slt.data.datamodule import TranslationDataModule
from lightning_slt.data.dataset import EncodedPairs, collate_translation
from lightning_slt.data.errors import (
    ChecksumError,
    CorpusEncodingError,
    CorpusNotFoundError,
    DataError,
    DownloadError,
    EmptyCorpusError,
    ExampleTooLongError,
    LocalOnlyCorpusError,
    MisalignedCorpusError,
)
from lightning_slt.data.text import read_lines, read_parallel
from lightning_slt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_tokenizer

__all__ = [
    "BOS_ID",
    "CORPORA",
    "ChecksumError",
    "CorpusEncodingError",
    "CorpusNotFoundError",
    "DATA_ENV_VAR",
    "DataError",
    "DownloadError",
    "EOS_ID",
    "EmptyCorpusError",
    "EncodedPairs",
    "ExampleTooLongError",
    "LocalOnlyCorpusError",
    "MisalignedCorpusError",
    "PAD_ID",
    "TokenBucketBatchSampler",
    "Tokenizer",
    "TranslationDataModule",
    "UNK_ID",
    "collate_translation",
    "data_root",
    "download_corpus",
    "read_lines",
    "read_parallel",
    "resolve_corpus",
    "train_tokenizer",
    "user_cache_dir",
]
