"""Start a fit from pretrained weights instead of the module's own initialisation.

Why a callback: the weights a chain starts from are a property of the *run* (an experiment's
dense run fine-tunes them; its LT rounds then rewind to them as θ0), not of the module, so any
LightningModule can start from a Lightning checkpoint, a plain ``state_dict`` or a Hugging Face
``save_pretrained`` folder without code of its own. The weights are copied in ``on_fit_start``,
before the first step, so ``WeightRewind(step=0)`` records exactly them as θ0; a resumed fit
(``ckpt_path``) keeps its checkpoint's weights.

Keep-sparsity fine-tuning of an already-sparse model (its zeros are the mask) is this callback
with ``ConvergedMask(source=<same file>, sparsity=None)``: see ``conf/pruning/keep_sparsity.yaml``.
"""

from __future__ import annotations

import os

import torch
from typing_extensions import override

from lightning_slt._lightning import Callback, pl, rank_zero_info
from lightning_slt.artifacts import load_source
from lightning_slt.artifacts.matching import check_shapes, match_partial
from lightning_slt.pruning.selection import covering_patterns
from lightning_slt.pruning.sharding import like

from .base import check_vocabulary


class PretrainedStart(Callback):
    """Copy pretrained weights into the module before a fresh fit's first step.

    Every trainable parameter must be in the source (names matched as for pruning sources:
    a LightningModule's ``model.`` prefix and DDP/``torch.compile`` wrappers are tolerated);
    frozen parameters and buffers are copied where the source has them (a Hugging Face folder
    leaves out Marian's sinusoidal position table, which the model builds itself).

    Args:
        source: a Lightning checkpoint (its final weights), a plain ``state_dict`` file, a
            ticket, or a Hugging Face ``save_pretrained`` folder / its weights file.

    Raises:
        FileNotFoundError: no such source.
        ValueError: the source holds no weights, misses trainable parameters (named, with the
            ``exclude`` patterns that cover them), or has tensors of other shapes.
    """

    def __init__(self, source: str | os.PathLike) -> None:
        self.source = os.fspath(source)

    @override
    @torch.no_grad()
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None:  # resuming: the checkpoint's weights are the run's
            return
        what = f"pretrained source {self.source!r}"
        source = load_source(self.source)
        check_vocabulary(trainer, source, what)
        weights = source.weights
        if weights is None:
            raise ValueError(f"{what} holds masks only, no weights to start from; pass a checkpoint or state_dict")
        targets = pl_module.state_dict(keep_vars=True)  # parameters and persistent buffers (a tied one by each name)
        names, _ = match_partial(targets, weights, what)
        covered = {id(targets[name]) for name in names}
        trainable = {name: p for name, p in pl_module.named_parameters() if p.requires_grad}  # a tied one once
        missing = [name for name, param in trainable.items() if id(param) not in covered]
        if missing:
            raise ValueError(
                f"{what} has no weights for {len(missing)} of the module's {len(trainable)} trainable parameters: "
                f"{missing[:8]}{' ...' if len(missing) > 8 else ''} ({covering_patterns(missing, targets)}); it comes "
                "from another model, or the module adds layers the source lacks (a new head): pass a source that "
                "has them, or freeze them (requires_grad=False) to keep the module's own values"
            )
        mapped = {name: weights[key] for name, key in names.items()}
        check_shapes(mapped, targets, what)
        for name, value in mapped.items():
            targets[name].copy_(like(value, targets[name]))  # a DTensor parameter: its shard
        rank_zero_info(f"lightning_slt: started from {self.source} ({len(mapped)} of {len(targets)} tensors; the "
                       f"others keep the module's own values)" if len(mapped) < len(targets) else
                       f"lightning_slt: started from {self.source} ({len(mapped)} tensors)")
