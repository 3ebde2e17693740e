"""lightning_slt: lottery-ticket pruning of Transformers as PyTorch Lightning callbacks.

Implements Brix, Bahar & Ney, "Successfully Applying the Stabilized Lottery Ticket Hypothesis
to the Transformer Architecture" (ACL 2020). Public names are imported lazily so that
``import lightning_slt.pruning`` stays free of Lightning and quick to import.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "TranslationModule": "lightning_slt.model.module",
    "TranslationDataModule": "lightning_slt.data.datamodule",
    "GradualMagnitudePruning": "lightning_slt.callbacks.gradual",
    "ConvergedMask": "lightning_slt.callbacks.converged_mask",
    "WeightRewind": "lightning_slt.callbacks.weight_rewind",
    "SignOnlyReinit": "lightning_slt.callbacks.reinit",
    "RandomReinit": "lightning_slt.callbacks.reinit",
    "RandomMask": "lightning_slt.callbacks.random_mask",
    "SparsityMonitor": "lightning_slt.callbacks.sparsity_monitor",
    "PretrainedStart": "lightning_slt.callbacks.pretrained",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'lightning_slt' has no attribute {name!r}")
