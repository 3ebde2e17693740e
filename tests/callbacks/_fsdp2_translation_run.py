"""Our TranslationModule at transformer_cpu shapes under FSDP2 (its ``configure_model`` shards per
layer), 2 CPU processes: a GMP run with validation (beam search through the shards).

Usage: python -m tests.callbacks._fsdp2_translation_run OUT_DIR DATA_ROOT
Saves, on rank 0, the whole weights before each prune and the masks after it to OUT_DIR/gmp.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from pytorch_lightning import Trainer, seed_everything
from pytorch_lightning.strategies import ModelParallelStrategy

from lightning_slt import GradualMagnitudePruning, TranslationDataModule, TranslationModule

from ._fsdp2_run import Recorder, WeightsBeforePruning


def main(out: Path, data_root: str) -> None:
    seed_everything(0, verbose=False)
    data = TranslationDataModule(data_root=data_root, cache_dir=str(out / "spm"), vocab_size=1000, train_subset=256,
                                 valid_subset=8, test_subset=8, max_tokens=512, max_len=64)
    module = TranslationModule.from_preset("transformer_cpu", vocab_size=data.vocab_size, warmup_steps=2,
                                           val_beam_size=2, max_len_b=4, output_dir=str(out / "test"))
    before, recorder = WeightsBeforePruning(), Recorder()
    trainer = Trainer(accelerator="cpu", devices=2, strategy=ModelParallelStrategy(data_parallel_size=2,
                      tensor_parallel_size=1), max_steps=4, val_check_interval=4, limit_val_batches=1,
                      num_sanity_val_steps=0, use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[before, GradualMagnitudePruning(0.9, end_step=4, frequency=2), recorder])
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(out / "last.ckpt")  # a distributed checkpoint folder
    if trainer.is_global_zero:
        torch.save({"before": before.before, "after": recorder.after, "final": recorder.final,
                    "sharded": recorder.sharded, "pruned_grad_nonzero": recorder.pruned_grad_nonzero,
                    "valid_bleu": float(trainer.callback_metrics["val/bleu"])}, out / "gmp.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
