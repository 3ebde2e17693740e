"""Holding masks on a model and keeping pruned entries at exactly zero.

Masks are bool tensors beside the parameters (1 byte per prunable entry on the training
device). Two in-place multiplications keep a pruned model pruned, with no forward hooks and no
``weight_orig`` re-parametrisation (``state_dict`` keys never change, the model stays
``torch.compile``-able):

- the gradients of pruned entries are zeroed as autograd produces them (a hook on each
  parameter's gradient, run before it is accumulated, so before DDP's all-reduce, gradient
  clipping and the optimizer): what any optimizer sees is exactly the gradient of a masked
  forward ``w ⊙ m``. Elementwise optimizers (SGD, Adam) would not care, but Adafactor's factored
  moments and update clipping, and clipping by global norm, read the whole tensor;
- the weights are re-zeroed after every ``optimizer.step()`` (``register_step_post_hook``), so
  weight decay or a stale moment cannot revive a pruned weight.

Both work in a plain PyTorch loop as in Lightning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .masks import Masks
from .sharding import is_sharded, like, whole


class ParameterMasks:
    """Masks for a set of named parameters, applied in place.

    Args:
        params: the parameters that may be pruned, keyed by name (see ``prunable_parameters``).

    Attributes:
        masks: the current masks (True = kept), on each parameter's device. Tensors without an
            entry are unpruned.
    """

    def __init__(self, params: Mapping[str, nn.Parameter]) -> None:
        self.params = dict(params)
        self.sharded = any(is_sharded(p) for p in self.params.values())  # FSDP2: DTensor shards
        self.masks: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._grad_hooked = False

    def set_masks_(self, masks: Mapping[str, Tensor], optimizers: Iterable[torch.optim.Optimizer] = ()) -> None:
        """Replace the masks of the given tensors, zero the pruned weights and their optimizer state.

        Raises:
            ValueError: a plain mapping whose mask names an unknown tensor, has another shape or
                is not bool (a :class:`Masks` was checked when built).
        """
        if not isinstance(masks, Masks):
            masks = Masks(masks, self.params)
        for name, mask in masks.items():
            self.masks[name] = like(mask, self.params[name]).clone()  # a DTensor parameter: its shard of the mask
        self.apply_()
        for optimizer in optimizers:
            self.zero_optimizer_state_(optimizer)

    @torch.no_grad()
    def apply_(self) -> None:
        """Zero every pruned entry in place. ``+ 0.0`` turns the ``-0.0`` of a masked negative
        weight into ``+0.0``, so pruned entries are bit-identical zeros."""
        if not self.masks:
            return
        params = [self.params[name] for name in self.masks]
        torch._foreach_mul_(params, list(self.masks.values()))
        torch._foreach_add_(params, 0.0)

    @torch.no_grad()
    def zero_optimizer_state_(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero per-entry optimizer state (Adam moments, momentum) of pruned entries."""
        by_param = {id(p): mask for name, mask in self.masks.items() for p in [self.params[name]]}
        for param, state in optimizer.state.items():
            mask = by_param.get(id(param))
            if mask is None:
                continue
            for value in state.values():
                if isinstance(value, Tensor) and value.shape == mask.shape and value.is_floating_point():
                    value.mul_(mask)

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned gradients as they are computed, and pruned weights after every step.

        The gradient hooks are registered once per parameter (whatever the number of
        optimizers); each looks its mask up when it runs, so masks set later are honoured.
        """
        if not self._grad_hooked:
            for name, param in self.params.items():
                if param.requires_grad:
                    self._handles.append(param.register_hook(self._gradient_hook(name)))
            self._grad_hooked = True
        self._handles.append(optimizer.register_step_post_hook(lambda *_: self.apply_()))

    @torch.no_grad()
    def mask_gradients_(self) -> None:
        """Zero the pruned entries of the gradients now. For sharded parameters (FSDP2), whose
        gradients are assigned after the reduce-scatter instead of accumulated by autograd, so the
        hooks of :meth:`attach` never see them: call it after backward, before clipping and the step."""
        grads = [(self.params[name].grad, mask) for name, mask in self.masks.items() if self.params[name].grad is not None]
        if grads:
            torch._foreach_mul_([g for g, _ in grads], [m for _, m in grads])

    def _gradient_hook(self, name: str):
        def mask_gradient(grad: Tensor) -> Tensor:
            mask = self.masks.get(name)
            return grad if mask is None else grad * mask
        return mask_gradient

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._grad_hooked = False

    def state_dict(self) -> dict[str, Tensor]:
        """Whole masks on CPU, keyed by parameter name (sharded ones gathered: the same on every rank)."""
        return {name: whole(mask).cpu() for name, mask in self.masks.items()}

    def load_state_dict(self, masks: Mapping[str, Tensor]) -> None:
        masks = Masks(masks, self.params, source="checkpointed mask")
        self.masks = {name: like(mask, self.params[name]) for name, mask in masks.items()}
