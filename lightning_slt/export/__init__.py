"""From a run's checkpoint to deployable files, and sparse CPU inference.

The ticket file format and its mask codec live in ``lightning_slt.artifacts`` (``ticket``,
``mask_codec``), with every other file format; this package writes tickets of our checkpoints.

- ``checkpoint``: TranslationModule checkpoint -> ticket (`export_checkpoint`) and back
  (`load_ticket`).
- ``winning_ticket``: θk ⊙ m of a checkpoint as a ticket (`export_winning_ticket`), a source for
  ``WeightRewind`` and ``ConvergedMask``.
- ``wandb_artifact``: a ticket as a W&B model artifact (`log_ticket_artifact`).
- ``sparse_linear``: CSR matmuls for pruned projections where they beat dense (`sparsify_`).
- ``ctranslate2``: a checkpoint or ticket as a CTranslate2 model folder (`export_ctranslate2`).
- ``translate`` / ``cli``: the ``lightning-slt translate`` and ``export`` commands.

Names are imported lazily, so reading a ticket does not import Lightning.
"""

from importlib import import_module
from typing import Any

_PUBLIC = {
    "export_checkpoint": "lightning_slt.export.checkpoint",
    "load_ticket": "lightning_slt.export.checkpoint",
    "pruned_masks_from_zeros": "lightning_slt.export.checkpoint",
    "export_winning_ticket": "lightning_slt.export.winning_ticket",
    "log_ticket_artifact": "lightning_slt.export.wandb_artifact",
    "ticket_metadata": "lightning_slt.export.wandb_artifact",
    "CsrMatmul": "lightning_slt.export.sparse_linear",
    "LayerChoice": "lightning_slt.export.sparse_linear",
    "SparseLinear": "lightning_slt.export.sparse_linear",
    "sparsify_": "lightning_slt.export.sparse_linear",
    "export_ctranslate2": "lightning_slt.export.ctranslate2",
    "translate_main": "lightning_slt.export.translate",
    "export_main": "lightning_slt.export.cli",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'lightning_slt.export' has no attribute {name!r}")
