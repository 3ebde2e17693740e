"""Fixtures shared by the data tests: a session-wide sentencepiece cache, so each tokenizer
is trained once per test session, and the real Multi30k lengths for the batching tests."""

from pathlib import Path

import numpy as np
import pytest

from lightning_slt.data import TranslationDataModule


@pytest.fixture(scope="session")
def spm_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spm_cache")


@pytest.fixture(scope="session")
def multi30k_full(data_root, spm_cache) -> TranslationDataModule:
    """The real Multi30k en-de training split, tokenized with the default 8000-piece model."""
    data = TranslationDataModule("multi30k", "en", "de", data_root=str(data_root), cache_dir=str(spm_cache))
    data.setup("fit")
    return data


@pytest.fixture(scope="session")
def multi30k_lengths(multi30k_full) -> np.ndarray:
    """(29000, 2) padded (src, tgt) lengths of every Multi30k en-de training pair."""
    return multi30k_full.dataset("train").padded_lengths()


@pytest.fixture
def make_data(data_root, spm_cache):
    """Factory of quick data modules: 2000 training pairs, 1000 pieces (trains in under a second)."""

    def make(**overrides) -> TranslationDataModule:
        options = dict(
            corpus="multi30k",
            src_lang="en",
            tgt_lang="de",
            data_root=str(data_root),
            cache_dir=str(spm_cache),
            vocab_size=1000,
            train_subset=2000,
            valid_subset=300,
            test_subset=300,
            max_tokens=512,
        )
        options.update(overrides)
        return TranslationDataModule(**options)

    return make
