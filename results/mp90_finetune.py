"""How results/benchmarks/sparse_inference_cpu_mp90.json's 90 % model was made: the dense baseline's best
checkpoint fine-tuned for 360 steps with GradualMagnitudePruning 0 -> 90 % (end step 240, every 20),
bf16-mixed. Usage: python results/mp90_finetune.py DENSE_BEST.ckpt mp90.ckpt; then
python benchmarks/sparse_inference.py --checkpoint mp90.ckpt --sparsities 0.9"""

import sys

import pytorch_lightning as pl

from lightning_slt import TranslationModule, TranslationDataModule, GradualMagnitudePruning
from lightning_slt._runtime import configure_cpu
configure_cpu()
ck = sys.argv[1]  # the dense run's best checkpoint
module = TranslationModule.load_from_checkpoint(ck, map_location="cpu", warmup_steps=50, lr=5e-4)
data = TranslationDataModule(corpus="multi30k", vocab_size=8000, max_tokens=4096, valid_subset=200)
trainer = pl.Trainer(max_steps=360, precision="bf16-mixed", accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                     limit_val_batches=0, use_distributed_sampler=False,
                     callbacks=[GradualMagnitudePruning(0.9, end_step=240, frequency=20)])
trainer.fit(module, datamodule=data)
trainer.save_checkpoint(sys.argv[2])
print("saved", sum(int((p == 0).sum()) for n, p in module.named_parameters() if p.dim() >= 2) / sum(p.numel() for p in module.parameters() if p.dim() >= 2))
