"""A random mask with the same exact counts as magnitude pruning (the random-pruning control)."""

from __future__ import annotations

from typing_extensions import override

from lightning_slt._lightning import pl
from lightning_slt.pruning import Masks, check_scope, check_sparsity, random_masks, random_masks_like

from .base import PruningCallback, PruningSession, Role, renamed_argument
from .converged_mask import converged_masks


class RandomMask(PruningCallback):
    """Start this fit from a random mask of the given sparsity.

    The control for "does the magnitude mask matter" (Frankle & Carbin 2019; OpenLTH's random
    pruning; Gale et al. 2019's random-pruning Transformer baseline). The mask is drawn over the
    whole tensor, from a generator seeded by (seed, tensor name), so every rank and every run
    with the same seed draws the same mask. Pair it with weights that are non-zero everywhere
    (the *dense* run's θk): a parent ticket's θk is 0 wherever the parent pruned, and a random
    mask would keep those accidental zeros.

    Args:
        sparsity: fraction in [0, 1).
        source: a converged run's checkpoint: prune, per tensor, exactly as many entries as
            ``ConvergedMask(source, sparsity, scope)`` would (the SLT round this control is
            compared with, nesting included). None: exactly round(s·n) per tensor (layer-wise)
            or overall (global).
        scope: "layerwise" or "global".
        seed: seeds the draw.
        include / exclude: glob patterns of parameter names (default: all trainable matrices).
        like: the deprecated old name of ``source``.

    Raises:
        ValueError: bad sparsity/scope, or ``source`` unusable (as ``ConvergedMask``'s checkpoint).

    Acts at: ``setup`` (reads ``source``), ticket phase "mask" (fresh fits only). State: none.

    Example::

        callbacks = [RandomMask(0.8, source="runs/slt_0.70/last.ckpt"), WeightRewind(step=150, source="runs/dense/last.ckpt")]
    """

    role = Role.MASK

    def __init__(
        self,
        sparsity: float,
        source: str | None = None,
        scope: str = "layerwise",
        seed: int = 0,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        like: str | None = None,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.source = renamed_argument("RandomMask", "source", source, "like", like)
        self.scope = check_scope(scope)
        self.seed = seed
        self.include = include
        self.exclude = exclude
        self._reference: Masks | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        params = self._select(pl_module, self.include, self.exclude)  # fail on bad patterns before training
        if stage == "fit" and self.source is not None:
            self._reference, _ = converged_masks(params, self.session.read_source(self.source),
                                                 f"checkpoint {self.source!r}", self.sparsity, self.scope)

    @override
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        if self._reference is not None:
            masks = random_masks_like(self._reference, seed=self.seed)
            self._reference = None
        else:
            params = self._select(pl_module, self.include, self.exclude)
            masks = Masks(random_masks(params, self.sparsity, self.scope, seed=self.seed), params)
        session.masks.set_masks_(masks, trainer.optimizers)
