"""RNG states Lightning does not save: torch, numpy and python ``random`` round trip through a
weights-only checkpoint, and ``TrainingRng`` stores and restores them at the right hooks."""

import random

import numpy as np
import torch

from lightning_slt.artifacts.keys import RNG_KEY
from lightning_slt.model.rng import TrainingRng, rng_states, set_rng_states


def _draw() -> tuple:
    return torch.rand(2).tolist(), random.random(), float(np.random.rand())


def test_rng_states_round_trip_all_three_generators():
    states = rng_states()
    first = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    set_rng_states(states)
    second = (torch.rand(3), random.random(), np.random.rand(), np.random.randn())
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]


def test_rng_states_load_with_weights_only(tmp_path):
    torch.save({RNG_KEY: rng_states()}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)[RNG_KEY]
    set_rng_states(loaded)  # no unpickling error, and the states are usable


def test_rng_states_hold_only_types_a_weights_only_load_accepts():
    states = rng_states()
    assert {"torch", "python", "numpy_keys", "numpy_pos", "numpy_has_gauss", "numpy_cached_gaussian"} <= set(states)
    assert states["torch"].dtype == torch.uint8 and states["numpy_keys"].shape == (624,)
    assert states["numpy_keys"].dtype == torch.int64 and isinstance(states["numpy_pos"], int)


def test_a_checkpoint_taken_after_its_step_stores_the_states_right_after_that_step():
    rng = TrainingRng()
    torch.manual_seed(0)
    rng.after_train_step(global_step=5)
    after_step = _draw()  # what the next training step would draw
    stored = rng.for_checkpoint(global_step=5)  # e.g. taken during validation, after more draws
    set_rng_states(stored)
    assert _draw() == after_step
    set_rng_states(rng.for_checkpoint(global_step=6))  # another step: the current states
    assert _draw() != after_step


def test_validation_is_rng_neutral_while_fitting_only():
    rng = TrainingRng()
    torch.manual_seed(1)
    rng.after_train_step(global_step=3)
    expected = _draw()
    rng.after_validation(fitting=True)  # the states of the last training step come back
    assert _draw() == expected
    rng.after_validation(fitting=False)  # a validate/test run: nothing restored
    assert _draw() != expected


def test_loaded_states_are_restored_on_resume_only_and_once():
    torch.manual_seed(2)
    saved, expected = rng_states(), _draw()
    rng = TrainingRng()
    rng.loaded(saved)
    rng.on_train_start(resuming=False)  # load_from_checkpoint + a new fit: not restored, and forgotten
    rng.on_train_start(resuming=True)
    assert _draw() != expected
    rng.loaded(saved)
    rng.on_train_start(resuming=True)
    assert _draw() == expected
