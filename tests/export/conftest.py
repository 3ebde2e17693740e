"""The pruned checkpoint the export and translate tests share (trained once per session)."""

from pathlib import Path

import pytest

from lightning_slt.callbacks import GradualMagnitudePruning

from ._train import TINY, train_and_save


@pytest.fixture(scope="session")
def pruned_checkpoint(data_root, tmp_path_factory) -> Path:
    """A TranslationModule trained 8 steps on 256 Multi30k pairs while pruned to 80 %."""
    root = tmp_path_factory.mktemp("ckpt")
    return train_and_save(data_root, root, dict(vocab_size=300, train_subset=256, max_tokens=256), TINY, max_steps=8,
                          callbacks=(GradualMagnitudePruning(final_sparsity=0.8, end_step=4, frequency=2),))
