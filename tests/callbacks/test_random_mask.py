"""RandomMask: seeded per tensor name, so under Lightning DDP (2 CPU processes, ddp_spawn) every
rank holds the same mask, as it does with GradualMagnitudePruning."""

import pytest

from lightning_slt import GradualMagnitudePruning, RandomMask

from .tiny import MaskDigest, fresh_module, make_trainer


@pytest.mark.slow
def test_random_and_magnitude_masks_identical_on_both_ranks(tmp_path):
    module = fresh_module(0)
    callbacks = [RandomMask(0.3, seed=5), GradualMagnitudePruning(0.7, initial_sparsity=0.3, end_step=6, frequency=2),
                 MaskDigest(tmp_path)]
    trainer = make_trainer(8, callbacks, devices=2, strategy="ddp_spawn")
    trainer.fit(module)
    digests = {p.read_text() for p in tmp_path.glob("rank*.txt")}
    assert len(list(tmp_path.glob("rank*.txt"))) == 2 and len(digests) == 1
