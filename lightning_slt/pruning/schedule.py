"""The cubic sparsity schedule of Zhu & Gupta (2018), as used for MP in Brix et al. (§3.1).

    s_t = s_f + (s_i - s_f) * (1 - (t - t_begin) / (t_end - t_begin)) ** 3

for t in [t_begin, t_end]; s_i before t_begin and s_f after t_end. Masks are updated at the
pruning steps t_begin, t_begin + Δt, ... and always at t_end, so the final sparsity is reached
even when (t_end - t_begin) is not a multiple of Δt. Steps count optimizer steps.
"""

from __future__ import annotations


def cubic_sparsity(step: int, final_sparsity: float, initial_sparsity: float, begin_step: int, end_step: int) -> float:
    """Target sparsity after ``step`` optimizer steps (eq. 1 of Zhu & Gupta)."""
    if step <= begin_step:
        return float(initial_sparsity)
    if step >= end_step:
        return float(final_sparsity)
    progress = (step - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def is_pruning_step(step: int, begin_step: int, end_step: int, frequency: int) -> bool:
    """True at begin, begin + frequency, ... up to end, and at end itself."""
    if step < begin_step or step > end_step:
        return False
    return step == end_step or (step - begin_step) % frequency == 0


def check_schedule(begin_step: int, end_step: int, frequency: int) -> None:
    if begin_step < 0:
        raise ValueError(f"begin_step must be >= 0, got {begin_step}")
    if end_step < begin_step:
        raise ValueError(f"end_step ({end_step}) must not precede begin_step ({begin_step})")
    if frequency < 1:
        raise ValueError(f"frequency must be a positive number of steps, got {frequency}")


def paper_schedule(max_steps: int) -> dict[str, int]:
    """Brix et al.'s step counts at a run length of ``max_steps`` (T; theirs: 500k), written once.

    Warm-up 2 % (10k), rewind step k 5 % (25k), MP's ramp ends at 80 % (400k) and prunes every
    2 % (10k). Counts that must be positive are at least 1, so a short test run still has them.
    Keys: ``warmup_steps``, ``rewind_step``, ``mp_end_step``, ``mp_frequency``.
    """
    return {
        "warmup_steps": max(1, round(0.02 * max_steps)),
        "rewind_step": max(1, round(0.05 * max_steps)),
        "mp_end_step": round(0.8 * max_steps),
        "mp_frequency": max(1, round(0.02 * max_steps)),
    }
