"""Helpers of the ticket tests: the recorded θk of a run, the masks ConvergedMask must compute
from it, and one short fit that records the assembled ticket (its weights at the first batch)."""

from lightning_slt.artifacts import load_source
from lightning_slt.pruning import magnitude_masks, prunable_parameters

from .tiny import Probe, fresh_module, make_trainer


def _theta(ckpt, step):
    return load_source(ckpt).snapshots[step]


def _expected_masks(ckpt, sparsity):
    source = load_source(ckpt)
    module = fresh_module(1)
    names = prunable_parameters(module)
    return magnitude_masks({n: source.weights[n] for n in names}, sparsity)


def _run(callbacks, steps=1, seed=1):
    module = fresh_module(seed)  # a different init than the source run: the ticket must replace it
    probe = Probe()
    make_trainer(steps, [*callbacks, probe]).fit(module)
    return module, probe
