"""A random mask with the same exact counts as magnitude pruning (the random-pruning control)."""

from __future__ import annotations

from typing_extensions import override

from lightning_slt._lightning import pl
from lightning_slt.pruning import check_scope, check_sparsity, random_masks

from .base import Phase, PruningCallback, PruningSession, pruning_callbacks
from .converged_mask import ConvergedMask


class RandomMask(PruningCallback):
    """Start this fit from a random mask of the given sparsity.

    The control for "does the magnitude mask matter" (Frankle & Carbin; Gale et al. 2019's
    random-pruning Transformer baseline): exactly round(s·n) entries pruned per tensor
    (layer-wise) or overall (global), drawn from a generator seeded by (seed, tensor name), so
    every rank and every run with the same seed draws the same mask.

    Args:
        sparsity: fraction in [0, 1).
        scope: "layerwise" or "global".
        seed: seeds the draw.
        include / exclude: glob patterns of parameter names (default: all tensors of >= 2 dims).

    Raises:
        ValueError: bad sparsity/scope, or combined with ``ConvergedMask`` (two masks).

    Acts at: ticket phase "mask" (fresh fits only). State: none (masks live in the session).
    """

    phase = Phase.MASK

    def __init__(
        self,
        sparsity: float,
        scope: str = "layerwise",
        seed: int = 0,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.scope = check_scope(scope)
        self.seed = seed
        self.include = include
        self.exclude = exclude

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and any(isinstance(cb, ConvergedMask) for cb in pruning_callbacks(trainer)):
            raise ValueError("RandomMask and ConvergedMask both set the ticket's mask; use one of them")
        self._select(pl_module, self.include, self.exclude)

    @override
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        params = self._select(pl_module, self.include, self.exclude)
        masks = random_masks(params, self.sparsity, self.scope, seed=self.seed)
        session.masks.set_masks_(masks, trainer.optimizers)  # type: ignore[union-attr]
