"""Token-bucket batch sampler: budget, coverage, DDP sharding, determinism, skipping."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from lightning_slt.data import ExampleTooLongError, TokenBucketBatchSampler


def _padded_cost(lengths: np.ndarray, batch: list[int]) -> int:
    return len(batch) * int(lengths[batch].max())


def test_real_multi30k_batches_never_exceed_max_tokens(multi30k_lengths):
    assert multi30k_lengths.shape == (29000, 2)  # max_len=128 drops no Multi30k pair
    for max_tokens, expected_batches in ((1024, 489), (4096, 123)):
        sampler = TokenBucketBatchSampler(multi30k_lengths, max_tokens, seed=0)
        assert len(sampler) == expected_batches
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            costs = [_padded_cost(multi30k_lengths, batch) for batch in sampler]
            assert len(costs) == expected_batches
            assert max(costs) <= max_tokens
            # Greedy buckets leave little slack: all but the last batch of each width use > 90 %.
            assert np.median(costs) > 0.95 * max_tokens


def test_collated_tensors_respect_the_budget(multi30k_full):
    loader = multi30k_full.train_dataloader()
    seen = 0
    for batch in loader:
        assert batch["src"].numel() <= 4096 and batch["tgt_in"].numel() <= 4096
        seen += len(batch["index"])
    assert seen == 29000


def test_every_example_once_per_epoch(multi30k_lengths):
    sampler = TokenBucketBatchSampler(multi30k_lengths, 2048, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        flat = [i for batch in sampler for i in batch]
        assert sorted(flat) == list(range(len(multi30k_lengths)))


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_get_equal_counts_and_disjoint_shards(multi30k_lengths, num_replicas):
    samplers = [
        TokenBucketBatchSampler(multi30k_lengths, 4096, seed=0, num_replicas=num_replicas, rank=rank)
        for rank in range(num_replicas)
    ]
    total_batches = samplers[0].num_batches
    assert total_batches == 123
    per_rank = math.ceil(total_batches / num_replicas)
    for sampler in samplers:
        sampler.set_epoch(1)
    shards = [list(sampler) for sampler in samplers]
    assert [len(shard) for shard in shards] == [per_rank] * num_replicas
    assert [len(sampler) for sampler in samplers] == [per_rank] * num_replicas
    batch_counts = Counter(tuple(batch) for shard in shards for batch in shard)
    padding = per_rank * num_replicas - total_batches
    assert len(batch_counts) == total_batches  # every batch is served
    assert sorted(batch_counts.values(), reverse=True) == [2] * padding + [1] * (total_batches - padding)
    for rank, shard in enumerate(shards):  # the padding batches repeat the head of the epoch list
        for other in range(rank + 1, num_replicas):
            shared = {tuple(b) for b in shard} & {tuple(b) for b in shards[other]}
            assert len(shared) <= padding
    example_counts = Counter(i for shard in shards for batch in shard for i in batch)
    assert set(example_counts) == set(range(len(multi30k_lengths)))


def test_order_is_a_function_of_seed_and_epoch(multi30k_lengths):
    def batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = TokenBucketBatchSampler(multi30k_lengths, 4096, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert batches(0, 0) == batches(0, 0)
    assert batches(0, 1) == batches(0, 1)
    assert batches(0, 0) != batches(0, 1)
    assert batches(0, 0) != batches(1, 0)
    # Members of equal-length buckets are reshuffled per epoch, not only the batch order.
    assert {tuple(b) for b in batches(0, 0)} != {tuple(b) for b in batches(0, 1)}


def test_evaluation_order_is_sorted_and_fixed():
    lengths = np.array([[5, 7], [2, 2], [9, 3], [4, 4], [2, 3], [8, 8]])
    sampler = TokenBucketBatchSampler(lengths, 15, shuffle=False)  # widths 7, 2, 9, 4, 3, 8
    assert list(sampler) == [[1, 4, 3], [0], [5], [2]]
    sampler.set_epoch(7)
    assert list(sampler) == [[1, 4, 3], [0], [5], [2]]
    ranks = [list(TokenBucketBatchSampler(lengths, 15, shuffle=False, num_replicas=3, rank=r)) for r in range(3)]
    assert ranks == [[[1, 4, 3], [2]], [[0], [1, 4, 3]], [[5], [0]]]


def test_skip_batches_applies_to_the_next_iteration_only(multi30k_lengths):
    sampler = TokenBucketBatchSampler(multi30k_lengths, 4096, seed=0)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip_batches(40)
    assert len(sampler) == len(full)  # Lightning counts the skipped batches as done
    assert list(sampler) == full[40:]
    assert list(sampler) == full
    with pytest.raises(ValueError, match=r"skip_batches count must be in \[0, 123\], got 124"):
        sampler.skip_batches(124)


def test_too_long_example_points_at_the_length_filter():
    with pytest.raises(ExampleTooLongError) as raised:
        TokenBucketBatchSampler([(3, 4), (40, 12), (50, 2)], max_tokens=32)
    message = str(raised.value)
    assert message.startswith("example 2 needs 50 tokens (src 50, tgt 2, padded) but max_tokens=32; 2 example(s)")
    assert "max_len" in message


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        TokenBucketBatchSampler([(3, 4)], 32, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="lengths must be >= 1"):
        TokenBucketBatchSampler([(0, 4)], 32)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        TokenBucketBatchSampler([3, 4], 32)


def test_two_workers_give_the_same_batches(make_data):
    batches = {}
    for workers in (0, 2):
        data = make_data(num_workers=workers)
        data.setup("fit")
        batches[workers] = [batch for batch in data.train_dataloader()]
    assert len(batches[0]) == len(batches[2]) == len(data.train_dataloader())
    for serial, parallel in zip(batches[0], batches[2]):
        assert torch.equal(serial["index"], parallel["index"])
        assert torch.equal(serial["src"], parallel["src"]) and torch.equal(serial["tgt_out"], parallel["tgt_out"])
        assert serial["ref_text"] == parallel["ref_text"]
