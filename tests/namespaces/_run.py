"""One namespace end to end, in a process that imports only that Lightning namespace first.

Usage: python -m tests.namespaces._run NAMESPACE OUT_DIR DATA_ROOT
Prints one JSON line of what the test checks.
"""

import importlib
import json
import sys
from pathlib import Path

NAMESPACE, OUT, DATA = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
ns = importlib.import_module(NAMESPACE)  # imported before lightning_slt, as a user of it would
cli = importlib.import_module(f"{NAMESPACE}.cli")

import torch  # noqa: E402

from lightning_slt import GradualMagnitudePruning, TranslationDataModule, TranslationModule, WeightRewind  # noqa: E402
from lightning_slt._lightning import NAMESPACE as CHOSEN  # noqa: E402
from lightning_slt.checkpointing import AtomicCheckpointIO  # noqa: E402
from lightning_slt.pruning import prunable_parameters  # noqa: E402

TINY = dict(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, max_positions=128,
            warmup_steps=4, lr=3e-3, beam_size=1, max_len_b=5)
DATA_ARGS = dict(data_root=DATA, cache_dir=str(OUT / "spm"), vocab_size=300, train_subset=128, valid_subset=8,
                 test_subset=8, max_tokens=256, max_len=64, max_positions=128)
TRAINER = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
               num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False)


def sparsity(module) -> float:
    weights = list(prunable_parameters(module).values())
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


# 1. From Python: the namespace's Trainer with our callbacks and checkpoint plugin; fit, then resume.
ns.seed_everything(0, verbose=False)
data = TranslationDataModule(**DATA_ARGS)
module = TranslationModule(vocab_size=data.vocab_size, **TINY)
callbacks = [GradualMagnitudePruning(final_sparsity=0.5, begin_step=0, end_step=4, frequency=2), WeightRewind(step=2)]
trainer = ns.Trainer(max_steps=4, callbacks=callbacks, plugins=[AtomicCheckpointIO()], default_root_dir=str(OUT), **TRAINER)
trainer.fit(module, datamodule=data)
dense = OUT / "dense.ckpt"
trainer.save_checkpoint(dense)
resumed = ns.Trainer(max_steps=6, callbacks=[GradualMagnitudePruning(final_sparsity=0.5, begin_step=0, end_step=4,
                                                                      frequency=2), WeightRewind(step=2)],
                     plugins=[AtomicCheckpointIO()], default_root_dir=str(OUT), **TRAINER)
module2 = TranslationModule(vocab_size=data.vocab_size, **TINY)
resumed.fit(module2, datamodule=data, ckpt_path=str(dense))

# 2. The namespace's own LightningCLI: module, data module, callbacks and plugin by class_path.
config = {
    "seed_everything": 0,
    "trainer": {**TRAINER, "max_steps": 3, "default_root_dir": str(OUT / "cli"),
                "plugins": [{"class_path": "lightning_slt.checkpointing.AtomicCheckpointIO"}],
                "callbacks": [
                    {"class_path": "lightning_slt.ConvergedMask", "init_args": {"checkpoint": str(dense), "sparsity": 0.7}},
                    {"class_path": "lightning_slt.WeightRewind", "init_args": {"step": 2, "source": str(dense)}},
                    {"class_path": "lightning_slt.SparsityMonitor", "init_args": {"every_n_steps": 1}},
                    {"class_path": f"{NAMESPACE}.callbacks.ModelCheckpoint",
                     "init_args": {"dirpath": str(OUT / "cli"), "save_last": True, "save_top_k": 0}}]},
    "model": {"class_path": "lightning_slt.TranslationModule", "init_args": {"vocab_size": data.vocab_size, **TINY}},
    "data": {"class_path": "lightning_slt.TranslationDataModule", "init_args": DATA_ARGS},
}
(OUT / "slt.yaml").write_text(json.dumps(config))
run = cli.LightningCLI(args=["fit", "--config", str(OUT / "slt.yaml")], auto_configure_optimizers=False,
                       save_config_callback=None)
last = torch.load(OUT / "cli" / "last.ckpt", map_location="cpu", weights_only=False)
print(json.dumps({
    "chosen": CHOSEN,
    "python_steps": [trainer.global_step, resumed.global_step],
    "python_sparsity": round(sparsity(module2.model), 4),
    "io": [type(t.strategy.checkpoint_io).__name__ for t in (trainer, resumed, run.trainer)],
    "cli_steps": run.trainer.global_step,
    "cli_sparsity": round(sparsity(run.model.model), 4),
    "cli_checkpoint_masks": len(last["lightning_slt"]["masks"]),
    "module_base": type(run.model).__mro__[1].__module__.split(".")[0],
}))
