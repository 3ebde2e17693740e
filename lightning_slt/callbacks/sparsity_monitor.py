"""Logging sparsity, mask overlap and sign agreement to every Lightning logger (W&B included)."""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import override

from lightning_slt._lightning import Callback, pl
from lightning_slt.pruning import (
    mask_jaccard,
    prunable_parameters,
    sign_agreement,
    sparsity_report,
)

from .base import session_of


class SparsityMonitor(Callback):
    """Log sparsity per tensor and overall, and how the ticket relates to where it came from.

    Logged through ``LightningModule.log`` (so W&B, TensorBoard and CSV loggers all receive it):
    ``sparsity/global``, ``sparsity/<tensor>`` (when ``per_tensor``), ``params/remaining``, and,
    when the ticket came from an earlier run, ``mask/jaccard_previous`` (overlap of kept sets
    with that run's mask) and ``sign/agreement_rewind`` (fraction of kept weights whose sign
    still equals θk's) — the two figures that say how much a ticket moved.

    Without pruning callbacks it reports exact zeros of the prunable tensors, so it also
    monitors models pruned by other tools.

    Args:
        every_n_steps: log every this many optimizer steps (and at the end of each validation).
        per_tensor: also log one ``sparsity/<tensor>`` series per tensor.

    Acts at: ``on_train_batch_end``, ``on_validation_epoch_end``. State: none.
    """

    def __init__(self, every_n_steps: int = 50, per_tensor: bool = True) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.per_tensor = per_tensor

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """The figures this callback logs, as a flat dict."""
        session = session_of(trainer)
        params = prunable_parameters(pl_module)
        if session is not None and session.started:
            masks = {n: session.masks.masks.get(n, torch.ones_like(p, dtype=torch.bool)) for n, p in params.items()}
        else:
            masks = {n: p.detach() != 0 for n, p in params.items()}
        total = sum(p.numel() for p in pl_module.parameters())
        report = sparsity_report(masks, total_parameters=total)
        out = {"sparsity/global": report["global"], "params/remaining": float(report["remaining"])}
        if self.per_tensor:
            out.update({f"sparsity/{name}": value for name, value in report["per_tensor"].items()})
        if session is not None and session.previous_masks:
            out["mask/jaccard_previous"] = mask_jaccard(masks, session.previous_masks)
        if session is not None and session.reference:
            weights = {n: p.detach() for n, p in params.items()}
            out["sign/agreement_rewind"] = sign_agreement(weights, session.reference, masks)
        return out

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, value in self.compute(trainer, pl_module).items():
            pl_module.log(name, value, on_step=True, on_epoch=False, rank_zero_only=True)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            for name, value in self.compute(trainer, pl_module).items():
                pl_module.log(name, value, on_step=False, on_epoch=True, rank_zero_only=True)
