"""The one way the export tests train the small real TranslationModule they export: its sizes
(``TINY``) and the sentences they translate with it."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from lightning_slt.data import TranslationDataModule
from lightning_slt.model.module import TranslationModule


def train_and_save(data_root, root: Path, data_args: dict, model_args: dict, max_steps: int,
                   callbacks: tuple = ()) -> Path:
    """Fit a TranslationModule (seed 0, CPU, no validation) on Multi30k and save ``root/m.ckpt``."""
    data = TranslationDataModule(data_root=str(data_root), cache_dir=str(root / "spm"), valid_subset=32, test_subset=32,
                                 max_len=64, max_positions=128, eval_max_tokens=1024, **data_args)
    pl.seed_everything(0, verbose=False)
    module = TranslationModule(vocab_size=data.vocab_size, **model_args)
    trainer = pl.Trainer(default_root_dir=str(root), logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, max_steps=max_steps, callbacks=list(callbacks))
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(root / "m.ckpt")
    return root / "m.ckpt"


TINY = dict(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, max_positions=128,
            dropout=0.1, lr=3e-3, warmup_steps=4, beam_size=2, max_len_a=1.0, max_len_b=5)
SENTENCES = ["Two young men are playing football in a park.", "A dog.", "A woman is reading a book.",
             "", "Several people stand in front of a large building while a man rides a bicycle."]
