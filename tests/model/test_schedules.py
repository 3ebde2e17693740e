"""LR schedules: pinned multipliers at chosen steps and the LambdaLR wiring."""

import math
from typing import get_args

import pytest
import torch

from lightning_slt.model.schedules import (
    SCHEDULES,
    LRScheduleName,
    build_lr_scheduler,
    check_schedule_args,
    constant,
    cooldown,
    cooldown_steps_of,
    get_schedule,
    inverse_sqrt,
    linear_warmup,
    linear_warmup_rsqrt_decay,
    rsqrt_decay,
)


def test_literal_and_registry_list_the_same_names():
    assert set(get_args(LRScheduleName)) == set(SCHEDULES)


@pytest.mark.parametrize(("step", "expected"), [(1, 0.00025), (2000, 0.5), (4000, 1.0), (16000, 0.5), (64000, 0.25)])
def test_inverse_sqrt_warms_up_linearly_then_decays(step, expected):
    assert inverse_sqrt(step, 4000) == expected


@pytest.mark.parametrize(
    ("step", "expected"), [(1, 0.01), (9999, 0.01), (10000, 0.01), (40000, 0.005), (1000000, 0.001)]
)
def test_rsqrt_decay_is_the_papers_t2t_rule(step, expected):
    # lr(t) = 1 / sqrt(max(t, 10k)): 0.01 through warm-up, then halves every 4x steps.
    assert rsqrt_decay(step, 10000) == pytest.approx(expected, rel=1e-15)


def test_linear_warmup_rsqrt_decay_peaks_at_inverse_sqrt_warmup():
    assert linear_warmup_rsqrt_decay(50, 100) == 0.5 / 10.0
    assert linear_warmup_rsqrt_decay(100, 100) == 0.1
    assert linear_warmup_rsqrt_decay(400, 100) == 0.05


def test_linear_warmup_and_constant():
    assert [linear_warmup(s, 4) for s in (1, 2, 4, 100)] == [0.25, 0.5, 1.0, 1.0]
    assert linear_warmup(1, 0) == 1.0
    assert constant(12345, 0) == 1.0


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"lr_schedule must be one of .*'inverse_sqrt'.*got 'inv_sqrt'"):
        get_schedule("inv_sqrt")


def test_schedules_that_divide_by_warmup_need_it():
    with pytest.raises(ValueError, match="lr_schedule 'inverse_sqrt' needs warmup_steps >= 1, got 0"):
        check_schedule_args("inverse_sqrt", 0)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0, got -1"):
        check_schedule_args("constant", -1)
    check_schedule_args("constant", 0)  # no warm-up is fine for constant


def test_lambda_lr_gives_the_first_update_a_nonzero_rate():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = build_lr_scheduler(optimizer, "inverse_sqrt", warmup_steps=4)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == [0.25, 0.5, 0.75, 1.0, math.sqrt(4 / 5), math.sqrt(4 / 6), math.sqrt(4 / 7), math.sqrt(4 / 8)]


def test_scheduler_state_holds_no_schedule_configuration():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    state = build_lr_scheduler(optimizer, "rsqrt_decay", warmup_steps=10).state_dict()
    assert state["lr_lambdas"] == [None]  # a closure: resume takes the schedule from the YAML


def test_cooldown_holds_then_falls_linearly_over_the_last_steps():
    # T = 10, the last 4 updates (7..10) cool down: 4/4, 3/4, 2/4, 1/4
    assert [cooldown(step, 10, 4) for step in range(1, 11)] == [1.0] * 6 + [1.0, 0.75, 0.5, 0.25]
    assert [cooldown(step, 10, 0) for step in (1, 10)] == [1.0, 1.0]


def test_warmup_stable_decay_through_lambda_lr():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_lr_scheduler(optimizer, "linear_warmup", warmup_steps=2, total_steps=8, cooldown_steps=4)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == [0.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]


def test_cooldown_steps_of_a_fraction_needs_the_runs_length():
    assert cooldown_steps_of(0.2, 3000) == 600
    assert cooldown_steps_of(0.0, None) == 0
    with pytest.raises(ValueError, match="cooldown_fraction=0.2 needs the run's length: set trainer.max_steps"):
        cooldown_steps_of(0.2, -1)
    with pytest.raises(ValueError, match=r"cooldown_fraction must be in \[0, 1\)"):
        check_schedule_args("linear_warmup", 10, cooldown_fraction=1.0)
