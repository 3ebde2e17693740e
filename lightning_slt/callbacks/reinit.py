"""Re-initialising a ticket's values: sign-only (CLT) and fresh random weights (control)."""

from __future__ import annotations

import torch
from typing_extensions import override

from lightning_slt._lightning import pl, rank_zero_info
from lightning_slt.pruning import initialiser_values, sign_only_values
from lightning_slt.pruning.sharding import like

from .base import PruningCallback, PruningSession, Role


class SignOnlyReinit(PruningCallback):
    """Keep only the sign of each kept weight: w -> sign(w) * α_l per tensor (CLT).

    Brix et al. §4.3: "f sets all remaining parameters p in each layer l to sign(p)·α_l" with
    α_l = sqrt(6 / (n_in + n_out)), the bound of tensor2tensor's uniform initialiser. Acts
    after the weights source and the mask, on the masked tensors (all prunable tensors if there
    is no mask). ``sign="random"`` is the paper's random-sign control (24.6 vs 26.7 BLEU at 50 %).

    Args:
        magnitude: "fan_avg" (paper), "std" (each tensor's std, Zhou et al. 2019) or a positive float.
        sign: "kept" or "random".
        seed: seeds the random signs (per tensor name, the same on every rank).
        include / exclude: glob patterns of the tensors to transform (default: the masked ones).

    Acts at: ticket phase "values" (fresh fits only). State: none.

    Example::

        callbacks = [ConvergedMask(ckpt, sparsity=0.5), WeightRewind(step=1000, source=ckpt), SignOnlyReinit()]
    """

    role = Role.VALUES

    def __init__(
        self,
        magnitude: str | float = "fan_avg",
        sign: str = "kept",
        seed: int = 0,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        self.magnitude = magnitude
        self.sign = sign
        self.seed = seed
        self.include = include
        self.exclude = exclude
        if sign not in ("kept", "random"):
            raise ValueError(f"sign must be 'kept' or 'random', got {sign!r}")
        if not (magnitude in ("fan_avg", "std") or (isinstance(magnitude, (int, float)) and magnitude > 0)):
            raise ValueError(f"magnitude must be 'fan_avg', 'std' or a positive number, got {magnitude!r}")

    @override
    @torch.no_grad()
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        masks = session.masks.masks
        if self.include or self.exclude or not masks:
            params = self._select(pl_module, self.include, self.exclude)
        else:
            params = {n: session.masks.params[n] for n in masks}
        values = sign_only_values(params, masks, magnitude=self.magnitude, sign=self.sign, seed=self.seed)
        for name, value in values.items():
            params[name].copy_(like(value, params[name]))


class RandomReinit(PruningCallback):
    """Replace the ticket's weights by a fresh draw of the model's own initialiser (a control).

    Frankle & Carbin's re-init control: the same mask, every tensor drawn afresh from the
    distribution the model was initialised with (``pruning.initialiser_values``: the model's
    outermost ``reset_parameters`` / ``_reset_parameters`` / Hugging Face ``_init_weights``
    above each tensor, else Glorot uniform), so only the values change, not
    their scale. Runs after ``WeightRewind`` and before the mask.

    Args:
        seed: seeds the draw (on a CPU copy: the same on every rank and device).
        include / exclude: glob patterns of the parameters to draw; default every trainable
            parameter (biases and LayerNorm too: the whole initialisation is replaced).

    Acts at: ticket phase "reinit" (fresh fits only). State: none.
    """

    role = Role.REINIT

    def __init__(self, seed: int = 0, include: list[str] | None = None, exclude: list[str] | None = None) -> None:
        self.seed = seed
        self.include = include
        self.exclude = exclude

    @override
    @torch.no_grad()
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        params = self._select(pl_module, self.include or ["*"], self.exclude)
        params = {n: p for n, p in params.items() if p.requires_grad}
        values, how = initialiser_values(pl_module, list(params), seed=self.seed)
        for name, value in values.items():
            params[name].copy_(like(value, params[name]))
        rank_zero_info(f"lightning_slt: RandomReinit drew {len(values)} tensors from {how}")
