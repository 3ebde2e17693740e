"""GradualMagnitudePruning: schedule positions, exact counts, zeros under Adam, bad input."""

import pytest
import torch

from lightning_slt import GradualMagnitudePruning
from lightning_slt.pruning import cubic_sparsity, prunable_parameters

from .tiny import Probe, fresh_module, make_trainer


def test_sparsity_follows_the_cubic_schedule_with_exact_counts_and_zeros_every_step():
    module = fresh_module()
    probe = Probe()
    gmp = GradualMagnitudePruning(final_sparsity=0.8, begin_step=2, end_step=14, frequency=4)
    make_trainer(20, [gmp, probe]).fit(module)
    sizes = {n: p.numel() for n, p in prunable_parameters(module).items()}
    # pruning steps 2, 6, 10, 14 (and 14 = end); counts held in between
    for step, expected_step in [(1, None), (2, 2), (5, 2), (6, 6), (9, 6), (10, 10), (13, 10), (14, 14), (20, 14)]:
        counts = probe.sparsity_at[step]
        for name, n in sizes.items():
            target = 0.0 if expected_step is None else cubic_sparsity(expected_step, 0.8, 0.0, 2, 14)
            assert counts.get(name, 0) == round(target * n), (step, name)
    final = {n: int((p == 0).sum()) for n, p in prunable_parameters(module).items()}
    assert final == {n: round(0.8 * size) for n, size in sizes.items()}


def test_defaults_come_from_max_steps_and_initial_sparsity_prunes_at_step_zero():
    module = fresh_module()
    probe = Probe()
    gmp = GradualMagnitudePruning(final_sparsity=0.9, initial_sparsity=0.6)
    make_trainer(50, [gmp, probe]).fit(module)
    assert (gmp._end_step, gmp._frequency) == (40, 1)
    weight = prunable_parameters(module)["net.0.weight"]
    assert probe.start is not None
    assert int((probe.start["net.0.weight"] == 0).sum()) == round(0.6 * weight.numel())
    assert gmp.state_dict() == {"last_pruned_step": 40, "sparsity": 0.9}


def test_global_scope_prunes_exact_total():
    module = fresh_module()
    make_trainer(6, [GradualMagnitudePruning(0.7, end_step=4, frequency=2, scope="global")]).fit(module)
    params = prunable_parameters(module)
    total = sum(p.numel() for p in params.values())
    assert sum(int((p == 0).sum()) for p in params.values()) == round(0.7 * total)


def test_works_under_bf16_mixed_precision_and_torch_compile():
    module = fresh_module(compile=True)
    make_trainer(6, [GradualMagnitudePruning(0.5, end_step=4, frequency=2)], precision="bf16-mixed").fit(module)
    for name, p in prunable_parameters(module).items():
        assert int((p == 0).sum()) == round(0.5 * p.numel()), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final_sparsity": 1.0}, r"final_sparsity must be a fraction in \[0, 1\)"),
        ({"final_sparsity": -0.1}, "final_sparsity"),
        ({"final_sparsity": 0.5, "initial_sparsity": 0.6}, "must not exceed"),
        ({"final_sparsity": 0.5, "begin_step": 10, "end_step": 5}, r"end_step \(5\) must not precede begin_step \(10\)"),
        ({"final_sparsity": 0.5, "scope": "globl"}, "scope must be"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradualMagnitudePruning(**kwargs)


def test_schedule_past_max_steps_fails_before_training():
    module = fresh_module()
    before = {n: p.clone() for n, p in module.named_parameters()}
    trainer = make_trainer(10, [GradualMagnitudePruning(0.5, end_step=20, frequency=5)])
    with pytest.raises(ValueError, match=r"end_step \(20\) is after trainer.max_steps \(10\)"):
        trainer.fit(module)
    assert trainer.global_step == 0
    assert all(torch.equal(before[n], p) for n, p in module.named_parameters())
