"""Learning-rate schedules as pure functions of the update number, plus a LambdaLR builder.

Every schedule maps the 1-based update number ``step`` (the optimizer step about to be taken)
to a multiplier of the configured ``lr``. Keeping them pure makes them testable by value and
lets the same numbers be plotted, logged or reproduced outside a Trainer. ``build_lr_scheduler``
wraps one in ``torch.optim.lr_scheduler.LambdaLR`` stepped once per optimizer step, shifting
LambdaLR's 0-based counter by one so the very first update does not get a zero learning rate.

Schedules (``w`` = ``warmup_steps``):

- ``inverse_sqrt``: linear warm-up from 0 to ``lr`` over ``w`` steps, then ``lr * sqrt(w / step)``
  (fairseq's ``inverse_sqrt``; the Vaswani et al. 2017 rule with ``lr`` = its peak value).
- ``rsqrt_decay``: ``lr / sqrt(max(step, w))``, tensor2tensor's ``rsqrt_decay`` that the paper
  used with Adafactor on TPU (``lr = 1.0``, ``w = 10k``: 0.01 for 10k steps, then
  inverse-sqrt decay; no linear ramp). See paper.md §2.2.
- ``linear_warmup_rsqrt_decay``: ``lr * min(1, step / w) / sqrt(max(step, w))``,
  tensor2tensor's ``linear_warmup*rsqrt_decay`` (``transformer_base_v3`` multiplies by
  ``constant=2.0`` and ``d_model**-0.5``: put those into ``lr``).
- ``linear_warmup``: ``lr * min(1, step / w)``, then constant.
- ``constant``: ``lr`` throughout.

Any of them may end in a cooldown (``cooldown_steps`` > 0): over the last ``cooldown_steps`` of
``total_steps`` the multiplier falls linearly towards 0 (the "decay" of warmup-stable-decay,
Hägele et al. 2024). With ``linear_warmup`` that is WSD: the end point of a run sits at its
plateau instead of wherever the held rate's last swing left it, and a run of any length T
follows the same curve as a longer one up to its own cooldown.
"""

import math
from collections.abc import Callable
from typing import Literal

import torch

LRScheduleName = Literal["inverse_sqrt", "rsqrt_decay", "linear_warmup_rsqrt_decay", "linear_warmup", "constant"]


def inverse_sqrt(step: int, warmup_steps: int) -> float:
    """Linear warm-up to 1.0 at ``warmup_steps``, then ``sqrt(warmup_steps / step)``."""
    if step < warmup_steps:
        return step / warmup_steps
    return math.sqrt(warmup_steps / step)


def rsqrt_decay(step: int, warmup_steps: int) -> float:
    """``1 / sqrt(max(step, warmup_steps))``: flat during warm-up, then inverse-sqrt decay."""
    return 1.0 / math.sqrt(max(step, warmup_steps))


def linear_warmup_rsqrt_decay(step: int, warmup_steps: int) -> float:
    """``min(1, step / warmup_steps) / sqrt(max(step, warmup_steps))``; peaks at ``warmup_steps**-0.5``."""
    return min(1.0, step / warmup_steps) / math.sqrt(max(step, warmup_steps))


def linear_warmup(step: int, warmup_steps: int) -> float:
    """Linear warm-up to 1.0 at ``warmup_steps``, constant afterwards (no warm-up if 0)."""
    if warmup_steps == 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def constant(step: int, warmup_steps: int) -> float:
    """1.0 at every step; ``warmup_steps`` is ignored."""
    return 1.0


def cooldown(step: int, total_steps: int, cooldown_steps: int) -> float:
    """1.0 until the last ``cooldown_steps`` updates of ``total_steps``, then linearly down to
    ``1 / cooldown_steps`` at the last update (never 0: every update still moves the weights)."""
    if cooldown_steps <= 0 or step <= total_steps - cooldown_steps:
        return 1.0
    return max(0.0, (total_steps + 1 - step) / cooldown_steps)


SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "inverse_sqrt": inverse_sqrt,
    "rsqrt_decay": rsqrt_decay,
    "linear_warmup_rsqrt_decay": linear_warmup_rsqrt_decay,
    "linear_warmup": linear_warmup,
    "constant": constant,
}

# Schedules that divide by warmup_steps (or need it to be the decay's anchor).
_NEEDS_WARMUP = frozenset({"inverse_sqrt", "rsqrt_decay", "linear_warmup_rsqrt_decay"})


def get_schedule(name: str) -> Callable[[int, int], float]:
    """The schedule function called ``name``; ``ValueError`` lists the known names."""
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name]


def check_schedule_args(name: str, warmup_steps: int, cooldown_fraction: float = 0.0) -> None:
    """Raise ``ValueError`` when ``name`` is unknown or ``warmup_steps`` or ``cooldown_fraction``
    does not suit it."""
    get_schedule(name)
    if not 0.0 <= cooldown_fraction < 1.0:
        raise ValueError(f"cooldown_fraction must be in [0, 1) (the last part of max_steps in which the rate "
                         f"falls to 0; 0 = no cooldown), got {cooldown_fraction}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if name in _NEEDS_WARMUP and warmup_steps < 1:
        raise ValueError(f"lr_schedule {name!r} needs warmup_steps >= 1, got {warmup_steps}")


def cooldown_steps_of(cooldown_fraction: float, total_steps: int | None) -> int:
    """The number of updates a ``cooldown_fraction`` of a run of ``total_steps`` cools down over."""
    if cooldown_fraction == 0:
        return 0
    if total_steps is None or total_steps <= 0:
        raise ValueError(f"cooldown_fraction={cooldown_fraction} needs the run's length: set trainer.max_steps "
                         f"(the rate falls to 0 at that step), got max_steps={total_steps}")
    return max(1, round(cooldown_fraction * total_steps))


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int | None = None,
    cooldown_steps: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying schedule ``name`` (with a cooldown over the last ``cooldown_steps`` of
    ``total_steps``); step it once per optimizer step (``interval="step"``).

    The lambda is a plain closure, so LambdaLR's ``state_dict`` stores only its counter: on
    resume the schedule comes from the (YAML) arguments, never silently from the checkpoint, so
    a run resumed with a longer ``max_steps`` cools down at its new end.
    """
    check_schedule_args(name, warmup_steps)
    schedule = get_schedule(name)
    if cooldown_steps and total_steps is None:
        raise ValueError("a cooldown needs total_steps, the update it ends at")

    def multiplier(completed_steps: int) -> float:
        step = completed_steps + 1  # LambdaLR counts from 0
        return schedule(step, warmup_steps) * cooldown(step, total_steps or 0, cooldown_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)

