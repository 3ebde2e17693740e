"""Our TranslationModule at transformer_cpu shapes under FSDP2 (its ``configure_model`` shards per
layer), 2 CPU processes (gloo), each fit a separate Trainer:

- ``gmp``: GMP to 90 % with validation (beam search through the shards), its last.ckpt a
  distributed checkpoint folder;
- ``dense``: 6 steps recording θ2, saved as a folder; ``slt``: an SLT round from that folder
  (80 % from θT, weights θ2);
- ``uninterrupted`` (12 steps of a ramp to 80 % ending at 10) against ``stopped`` (the same,
  stopped at step 8 and saved as a folder) + ``resumed`` from it.

Usage: python -m tests.callbacks._fsdp2_translation_run OUT_DIR DATA_ROOT
Saves, on rank 0, what each fit recorded (whole tensors) to OUT_DIR/<name>.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytorch_lightning import Trainer, seed_everything
from pytorch_lightning.strategies import ModelParallelStrategy

from lightning_slt import ConvergedMask, GradualMagnitudePruning, TranslationDataModule, TranslationModule, WeightRewind

from ._fsdp2_run import Recorder, StopAt, WeightsBeforePruning, save


def fit(out: Path, callbacks: list, max_steps: int, ckpt_path: str | None = None, save_as: str | None = None,
        validate: bool = False) -> tuple | None:
    seed_everything(0, verbose=False)
    # one batch per rank and epoch (64 sentences in one 4096-token bucket each): a resumed epoch replays nothing
    data = TranslationDataModule(data_root=DATA_ROOT, cache_dir=str(out / "spm"), vocab_size=400, train_subset=64,
                                 valid_subset=8, test_subset=8, max_tokens=4096, max_len=64)
    module = TranslationModule.from_preset("transformer_cpu", vocab_size=data.vocab_size, warmup_steps=2,
                                           val_beam_size=2, max_len_b=4, output_dir=str(out / "test"))
    before, recorder = WeightsBeforePruning(), Recorder()
    trainer = Trainer(accelerator="cpu", devices=2, strategy=ModelParallelStrategy(data_parallel_size=2,
                      tensor_parallel_size=1), max_steps=max_steps, val_check_interval=max_steps if validate else None,
                      check_val_every_n_epoch=None, limit_val_batches=1 if validate else 0, num_sanity_val_steps=0,
                      use_distributed_sampler=False,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[before, *callbacks, recorder])
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    if save_as is not None:
        trainer.save_checkpoint(out / save_as)  # a distributed checkpoint folder
    if trainer.is_global_zero and validate:
        recorder.monitor = {**recorder.monitor, "val/bleu": float(trainer.callback_metrics["val/bleu"])}
    return (before, recorder) if trainer.is_global_zero else None


def main(out: Path) -> None:
    save(out, "gmp", fit(out, [GradualMagnitudePruning(0.9, end_step=4, frequency=2)], 4, save_as="last.ckpt",
                         validate=True))
    save(out, "dense", fit(out, [WeightRewind(step=2)], 6, save_as="dense.ckpt"))
    source = str(out / "dense.ckpt")
    save(out, "slt", fit(out, [ConvergedMask(source, sparsity=0.8), WeightRewind(step=2, source=source)], 4))

    def ramp() -> list:
        return [GradualMagnitudePruning(0.8, end_step=10, frequency=2)]

    save(out, "uninterrupted", fit(out, ramp(), 12))
    save(out, "stopped", fit(out, [*ramp(), StopAt(8)], 12, save_as="stopped.ckpt"))
    save(out, "resumed", fit(out, ramp(), 12, ckpt_path=str(out / "stopped.ckpt")))


if __name__ == "__main__":
    DATA_ROOT = sys.argv[2]
    main(Path(sys.argv[1]))
