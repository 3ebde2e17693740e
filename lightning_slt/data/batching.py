"""Token-bucketed batching: batches of similar-length examples under a padded-token budget.

Translation batches are sized in tokens, not sentences (Vaswani et al. 2017 used ~25k source +
25k target tokens per batch), because padding to the longest member wastes compute when short
and long sentences mix. Examples are sorted by length and cut greedily into batches whose padded
size ``batch_size * max(src_len, tgt_len)`` stays within ``max_tokens``; the order of the batches
is shuffled every epoch from ``(seed, epoch)`` so runs are reproducible and resumable.
"""

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from lightning_slt.data.errors import ExampleTooLongError


class TokenBucketBatchSampler(Sampler[list[int]]):
    """Yields lists of example indices whose padded batch never exceeds ``max_tokens``.

    Batches are cut once from the length-sorted examples, so their number is the same every
    epoch; with ``shuffle`` the examples of equal length are reshuffled inside their bucket and
    the batch order is permuted, both from ``numpy.random.default_rng([seed, epoch])``. With
    ``shuffle=False`` (evaluation) batches go from short to long and never change.

    Under DDP each rank builds the same global batch list and takes every ``num_replicas``-th
    batch starting at ``rank``; the list is first padded by repeating its head (as torch's
    ``DistributedSampler`` pads indices) so that every rank gets exactly ``len(self)`` batches and
    no rank waits in a collective for a batch that never comes.

    Exact resume: ``skip_batches(n)`` makes the next ``__iter__`` start at batch ``n`` of this
    epoch (once). ``len(self)`` stays the full epoch length because Lightning counts the batches
    it already did (restored from the checkpoint) towards it.

    Args:
        lengths: per example ``(src_len, tgt_len)`` as they will be padded (eos/bos included),
            shape ``(N, 2)``.
        max_tokens: budget per batch, counted as ``batch_size * max(padded src, padded tgt)``.
        shuffle: shuffle per epoch (training) or keep the sorted order (evaluation).
        seed: base of the per-epoch shuffling; the same (seed, epoch) gives the same batches.
        num_replicas: number of DDP ranks sharing the data.
        rank: this process's rank in ``[0, num_replicas)``.

    Raises:
        ValueError: bad argument values.
        ExampleTooLongError: one example alone needs more than ``max_tokens``.

    Example::

        sampler = TokenBucketBatchSampler([(12, 14), (30, 28), (7, 9)], max_tokens=64)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_translation)
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]] | np.ndarray,
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        _validate(lengths, max_tokens, seed, num_replicas, rank)
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._width = lengths.max(axis=1)  # (N,) padded width each example forces on its batch
        _check_fits(self._width, lengths, max_tokens)
        # Cut points depend only on the sorted widths, which every epoch shares: fixed batch count.
        self._bounds = _cut_points(np.sort(self._width, kind="stable"), max_tokens)
        self._skip = 0

    @property
    def sampler(self) -> "TokenBucketBatchSampler":
        """This sampler itself: Lightning calls ``set_epoch`` only on ``loader.sampler`` and
        ``loader.batch_sampler.sampler`` (``lightning_fabric.utilities.data._set_sampler_epoch``),
        never on the batch sampler, so this is how it finds ours every epoch."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle the next iteration uses (Lightning calls this)."""
        self.epoch = epoch

    def skip_batches(self, count: int) -> None:
        """Make the next iteration start at batch ``count`` of the current epoch (used on resume)."""
        if not 0 <= count <= len(self):
            raise ValueError(f"skip_batches count must be in [0, {len(self)}], got {count}")
        self._skip = count

    @property
    def num_batches(self) -> int:
        """Number of batches over all ranks before padding."""
        return len(self._bounds) + 1

    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's full batch list for ``epoch`` (default: the current one), ignoring skips."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            permutation = rng.permutation(len(self._width))
            order = permutation[np.argsort(self._width[permutation], kind="stable")]
            batch_order = rng.permutation(self.num_batches)
        else:
            order = np.argsort(self._width, kind="stable")
            batch_order = np.arange(self.num_batches)
        batches = np.split(order, self._bounds)
        padded_order = np.resize(batch_order, len(self) * self.num_replicas)  # repeats the head
        return [batches[i].tolist() for i in padded_order[self.rank :: self.num_replicas]]

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        yield from self.epoch_batches()[skip:]

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.num_replicas)


def _validate(lengths: np.ndarray, max_tokens: int, seed: int, num_replicas: int, rank: int) -> None:
    if lengths.ndim != 2 or lengths.shape[1] != 2 or lengths.shape[0] == 0:
        raise ValueError(f"lengths must be a non-empty (N, 2) list of (src_len, tgt_len), got shape {lengths.shape}")
    if lengths.min() < 1:
        raise ValueError("lengths must be >= 1: pass padded lengths, which count the eos/bos token")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive number of tokens, got {max_tokens}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, {num_replicas}) for num_replicas={num_replicas}, got {rank}")


def _check_fits(width: np.ndarray, lengths: np.ndarray, max_tokens: int) -> None:
    longest = int(np.argmax(width))
    if width[longest] > max_tokens:
        src_len, tgt_len = lengths[longest]
        raise ExampleTooLongError(
            f"example {longest} needs {width[longest]} tokens (src {src_len}, tgt {tgt_len}, padded) but "
            f"max_tokens={max_tokens}; {int((width > max_tokens).sum())} example(s) are too long. Drop long "
            "pairs with the length filter (TranslationDataModule max_len, which must stay below "
            "max_tokens) or raise max_tokens."
        )


def _cut_points(sorted_width: np.ndarray, max_tokens: int) -> list[int]:
    """Start positions (after the first) of greedy batches over ascending widths."""
    bounds = []
    start = 0
    for position, width in enumerate(sorted_width.tolist()):
        # Widths ascend, so the newest member sets the batch's padded width.
        if (position - start + 1) * width > max_tokens:
            bounds.append(position)
            start = position
    return bounds
