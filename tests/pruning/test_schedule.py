"""The cubic schedule pinned at chosen steps (Zhu & Gupta eq. 1; paper: 0 -> 400k, Δt 10k)."""

import pytest

from lightning_slt.pruning import check_schedule, cubic_sparsity, is_pruning_step


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),
        (100_000, 0.9 - 0.9 * 0.75**3),  # 0.520312...
        (200_000, 0.9 - 0.9 * 0.5**3),  # 0.7875
        (300_000, 0.9 - 0.9 * 0.25**3),  # 0.8859375
        (400_000, 0.9),
        (450_000, 0.9),
    ],
)
def test_paper_schedule_values(step, expected):
    assert cubic_sparsity(step, 0.9, 0.0, 0, 400_000) == pytest.approx(expected, abs=1e-12)


def test_slt_mp_schedule_starts_at_initial_sparsity():
    assert cubic_sparsity(0, 0.9, 0.6, 0, 1000) == 0.6
    assert cubic_sparsity(500, 0.9, 0.6, 0, 1000) == pytest.approx(0.9 - 0.3 * 0.125)
    assert cubic_sparsity(1000, 0.9, 0.6, 0, 1000) == 0.9


def test_pruning_steps_on_the_grid_and_at_end():
    steps = [t for t in range(0, 120) if is_pruning_step(t, 10, 95, 20)]
    assert steps == [10, 30, 50, 70, 90, 95]


@pytest.mark.parametrize(("begin", "end", "freq", "msg"), [(10, 5, 1, "must not precede"), (0, 5, 0, "positive"), (-1, 5, 1, ">= 0")])
def test_bad_schedules_are_refused(begin, end, freq, msg):
    with pytest.raises(ValueError, match=msg):
        check_schedule(begin, end, freq)
