"""Pruned entries never reach the optimizer or clipping: training a pruned model with
``ParameterMasks`` is bit-identical to training ``w ⊙ m`` with a masked forward.

Budget: < 10 s. Each case trains two copies of one model from the same pruned start for a few
steps, with gradient clipping by global norm (which reads every gradient), and compares the
kept weights exactly. Without gradient masking, clipping (all optimizers) and Adafactor's
factored moments (even unclipped) differ.
"""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.func import functional_call

from lightning_slt.pruning import ParameterMasks, magnitude_masks, prunable_parameters

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "adafactor": lambda p: torch.optim.Adafactor(p, lr=1e-2),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-1, momentum=0.9, nesterov=True),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 24), nn.GELU(), nn.Linear(24, 5))


def _data(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 12, generator=generator), torch.randint(0, 5, (16,), generator=generator))
            for _ in range(steps)]


def _pruned_pair(sparsity: float = 0.9):
    ours = _model()
    masks = magnitude_masks({n: p.detach() for n, p in prunable_parameters(ours).items()}, sparsity)
    with torch.no_grad():
        for name, mask in masks.items():
            ours.get_parameter(name).mul_(mask)
    return ours, copy.deepcopy(ours), masks


def _train(model, optimizer, data, forward, clip: float | None) -> None:
    for x, y in data:
        loss = nn.functional.cross_entropy(forward(model, x), y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _train_ours(model, masks, make_optimizer, data, clip):
    optimizer = make_optimizer(model.parameters())
    store = ParameterMasks(dict(model.named_parameters()))
    store.set_masks_(masks)
    store.attach(optimizer)
    _train(model, optimizer, data, lambda m, x: m(x), clip)
    store.detach()


def _train_masked_forward(model, masks, make_optimizer, data, clip):
    optimizer = make_optimizer(model.parameters())

    def forward(m, x):
        params = {n: p * masks[n] if n in masks else p for n, p in m.named_parameters()}
        return functional_call(m, params, (x,))

    _train(model, optimizer, data, forward, clip)


@pytest.mark.parametrize("clip", [0.05, None], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_update_equals_masked_forward(optimizer, clip):
    ours, reference, masks = _pruned_pair()
    data = _data(6)
    _train_ours(ours, masks, OPTIMIZERS[optimizer], data, clip)
    _train_masked_forward(reference, masks, OPTIMIZERS[optimizer], data, clip)
    for name, param in ours.named_parameters():
        expected = reference.get_parameter(name).detach()
        if name in masks:
            assert int((param[~masks[name]] != 0).sum()) == 0, name  # pruned stay exactly zero
            assert torch.equal(param[masks[name]], expected[masks[name]]), f"{optimizer}: kept weights of {name}"
        else:
            assert torch.equal(param, expected), f"{optimizer}: unpruned {name}"
    moved = sum(float((p - q).abs().sum()) for p, q in zip(ours.parameters(), _pruned_pair()[0].parameters()))
    assert moved > 0  # training did happen


def test_gradients_of_pruned_entries_are_zero_before_clipping():
    """The gradient clipping sees is already masked: its total norm equals the masked forward's."""
    ours, reference, masks = _pruned_pair()
    store = ParameterMasks(dict(ours.named_parameters()))
    store.set_masks_(masks)
    store.attach(torch.optim.SGD(ours.parameters(), lr=0.1))
    x, y = _data(1)[0]
    nn.functional.cross_entropy(ours(x), y).backward()
    params = {n: p * masks[n] if n in masks else p for n, p in reference.named_parameters()}
    nn.functional.cross_entropy(functional_call(reference, params, (x,)), y).backward()
    for name, mask in masks.items():
        grad = ours.get_parameter(name).grad
        assert int((grad[~mask] != 0).sum()) == 0, name
    norm = torch.nn.utils.get_total_norm([p.grad for p in ours.parameters()])
    assert torch.equal(norm, torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()]))


def test_masks_set_after_attach_are_honoured_and_detach_removes_hooks():
    model = _model()
    store = ParameterMasks(dict(model.named_parameters()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    store.attach(optimizer)
    store.attach(torch.optim.SGD(model.parameters(), lr=0.0))  # a second optimizer: hooks stay single
    masks = magnitude_masks({"0.weight": model[0].weight.detach()}, 0.5)
    store.set_masks_(masks)  # as GradualMagnitudePruning does mid-run
    x, y = _data(1)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    assert int((model[0].weight.grad[~masks["0.weight"]] != 0).sum()) == 0
    store.detach()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    assert int((model[0].weight.grad[~masks["0.weight"]] != 0).sum()) > 0  # no hook left behind


def test_lightning_clipping_sees_masked_gradients(tmp_path):
    """Through a real Trainer with ``gradient_clip_val``: when Lightning clips (after
    ``on_before_optimizer_step``), the pruned gradients are already zero."""
    from lightning_slt import GradualMagnitudePruning
    from lightning_slt.callbacks import session_of
    from tests.callbacks.tiny import fresh_module, make_trainer

    class ClipProbe(pl.Callback):
        seen: list[int] = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            session = session_of(trainer)
            if session.started and session.masks.masks:
                self.seen.append(sum(int((session.masks.params[n].grad[~m] != 0).sum())
                                     for n, m in session.masks.masks.items()))

    probe = ClipProbe()
    trainer = make_trainer(6, [GradualMagnitudePruning(0.8, initial_sparsity=0.5, begin_step=0, end_step=4,
                                                       frequency=2), probe], gradient_clip_val=0.01)
    trainer.fit(fresh_module(0))
    assert len(probe.seen) == 6 and probe.seen == [0] * 6


def test_parameter_masks_keep_pruned_weights_at_exact_zero_under_adam():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    params = prunable_parameters(model)
    store = ParameterMasks(params)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):  # build momentum first, then prune
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
    store.set_masks_(magnitude_masks(params, 0.75), [opt])
    store.attach(opt)
    for _ in range(20):
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
        for name, p in params.items():
            pruned = p[~store.masks[name]]
            assert (pruned == 0).all() and not torch.signbit(pruned).any()
    store.detach()
