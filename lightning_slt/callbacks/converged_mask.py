"""The lottery-ticket mask: magnitude pruning of a converged run's final weights θT."""

from __future__ import annotations

from torch import Tensor
from typing_extensions import override

from lightning_slt._lightning import pl
from lightning_slt.artifacts import Kind, RunCheckpoint, match_masks, match_names
from lightning_slt.artifacts.matching import check_shapes
from lightning_slt.pruning import Masks, check_nested_target, check_scope, check_sparsity, magnitude_masks

from .base import PruningCallback, PruningSession, Role, renamed_argument


class ConvergedMask(PruningCallback):
    """Start this fit from a mask computed from the weights of an earlier, converged run.

    LT/SLT of Brix et al. §3.2-3.3: "the parameters of each layer in the converged model θT are
    sorted by magnitude, and m is chosen to mask the smallest ones such that the target sparsity
    is reached". The mask is nested in that run's own mask. Use the run's *last* checkpoint (θT);
    the best-by-BLEU one is for reporting. Combine with ``WeightRewind(step, source=...)`` for the
    weights the mask is applied to.

    Args:
        source: the converged run's checkpoint (``checkpoint=`` is its deprecated old name). Besides ours, a plain ``state_dict`` (zeros
            are its mask), a ``torch.nn.utils.prune`` or Lightning ``ModelPruning`` checkpoint, or
            an OpenLTH ``mask.pth`` (mask only: then ``sparsity`` must be None).
        sparsity: target fraction in [0, 1); None takes the checkpoint's mask as it is.
        scope: "layerwise" (paper) or "global".
        include / exclude: glob patterns of parameter names (default: all tensors of >= 2 dims).

    Raises:
        FileNotFoundError: the checkpoint does not exist (at setup, before training).
        ValueError: corrupt checkpoint, tensors that do not match the model, or a sparsity below
            the checkpoint's own (masks are nested, so sparsity cannot go down).

    Acts at: ``setup`` (reads the checkpoint, computes the mask), ticket phase "mask".
    State: none of its own; the masks are saved with the session.

    Example::

        callbacks = [ConvergedMask("runs/dense/last.ckpt", sparsity=0.5), WeightRewind(step=1000, source="runs/dense/last.ckpt")]
    """

    role = Role.MASK

    def __init__(
        self,
        source: str | None = None,
        sparsity: float | None = None,
        scope: str = "layerwise",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        checkpoint: str | None = None,
    ) -> None:
        self.source = renamed_argument("ConvergedMask", "source", source, "checkpoint", checkpoint)
        if self.source is None:
            raise ValueError("ConvergedMask needs source=: the converged run's checkpoint (its last.ckpt, θT), a "
                             "ticket, a state_dict or a mask file")
        self.sparsity = sparsity
        self.scope = scope
        self.include = include
        self.exclude = exclude
        if sparsity is not None:
            check_sparsity(sparsity)
        check_scope(scope)
        self._masks: Masks | None = None
        self._previous: Masks | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            params = self._select(pl_module, self.include, self.exclude)
            source = self.session.read_source(self.source)
            self._masks, self._previous = converged_masks(params, source, f"checkpoint {self.source!r}",
                                                          self.sparsity, self.scope)

    @override
    def assemble(self, trainer: pl.Trainer, pl_module: pl.LightningModule, session: PruningSession) -> None:
        if self._masks is None:
            raise RuntimeError("ConvergedMask: no mask computed at setup")
        session.masks.set_masks_(self._masks, trainer.optimizers)
        session.previous_masks = self._previous
        self._masks = None  # the session holds them now; free the CPU copy


def converged_masks(params: dict[str, Tensor], source: RunCheckpoint, what: str, sparsity: float | None,
                    scope: str) -> tuple[Masks, Masks | None]:
    """The masks ``ConvergedMask`` starts from, and the source's own masks, keyed by ``params``' names.

    Magnitude masks of the source's weights at ``sparsity``, nested in its own mask; with
    ``sparsity=None`` its own mask as it is.
    """
    previous = None
    if source.masks:
        previous = match_masks(params, source.masks, what)  # uncovered tensors: unpruned, with a warning
        check_shapes(previous, params, what)  # names the file's shapes; then the type carries the check
        previous = Masks(previous, params, what)
    if sparsity is None:
        if previous is None:
            raise ValueError(f"{what} has no mask; give ConvergedMask a sparsity to prune its weights")
        return previous, previous
    if source.kind is Kind.WINNING_TICKET:
        raise ValueError(f"{what} is a winning ticket (θk ⊙ m), not converged weights θT to prune; set "
                         "sparsity=None to take its mask, or export the run without --winning-ticket")
    if source.weights is None:
        raise ValueError(f"{what} holds only a mask ({source.kind}); set sparsity=None to use it as it is")
    names = match_names(params, source.weights, what)
    weights = {n: source.weights[s].float() for n, s in names.items()}
    check_shapes(weights, params, what)
    if previous is not None:
        check_nested_target(previous, sparsity, scope, what)
    return Masks(magnitude_masks(weights, sparsity, scope, current=previous), params, what), previous
