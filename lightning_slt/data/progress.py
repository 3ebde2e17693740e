"""Progress of the current training epoch, saved so a run killed mid-epoch resumes at the next batch.

Lightning 2.6 replays an interrupted epoch from its first batch and keeps no sampler position,
so ``TranslationDataModule.state_dict`` saves the count of batches already trained, and the
next ``train_dataloader`` skips them on a sampler set to the same epoch.
"""

from typing import Any

from lightning_slt._lightning import rank_zero_warn
from lightning_slt.data.batching import TokenBucketBatchSampler


def epoch_progress(trainer: Any, sampler: TokenBucketBatchSampler) -> dict[str, int]:
    """``epoch``, ``batches_done``, ``epoch_batches`` (the Trainer's) and ``sampler_batches`` (the sampler's).

    ``batches_done`` is the count Lightning itself restores (a batch whose step finished counts,
    one interrupted inside ``training_step`` does not).
    """
    return {
        "epoch": int(trainer.current_epoch),
        "batches_done": int(trainer.fit_loop.epoch_loop.batch_progress.current.processed),
        "epoch_batches": int(trainer.num_training_batches),
        "sampler_batches": len(sampler),
    }


def resume_epoch(sampler: TokenBucketBatchSampler, state: dict[str, int] | None) -> None:
    """Set ``sampler`` to continue the epoch ``state`` describes; warn and restart the epoch when
    its batches per rank changed since (other data, max_tokens, max_len or devices)."""
    if not state:
        return
    epoch, done = state["epoch"], state["batches_done"]
    if state.get("sampler_batches") != len(sampler):
        rank_zero_warn(
            f"cannot resume epoch {epoch} at batch {done} exactly: the checkpoint's epoch had "
            f"{state.get('sampler_batches')} batches per rank, now {len(sampler)} (data, max_tokens, "
            "max_len or the number of devices changed); the epoch restarts from its first batch"
        )
        return
    if done >= state["epoch_batches"]:
        sampler.set_epoch(epoch + 1)  # saved at the end of an epoch: the next one starts fresh
    else:
        sampler.set_epoch(epoch)
        sampler.skip_batches(done)
