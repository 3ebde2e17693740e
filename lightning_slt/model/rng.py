"""RNG states Lightning does not save, so a killed run resumes bit-identically.

``rng_states`` captures torch (CPU and CUDA), numpy and python ``random``; ``TrainingRng``
decides which states a checkpoint stores and when they are put back: after validation during
``fit`` (validation is RNG-neutral, so its frequency never changes the trajectory) and at
``on_train_start`` of a resumed fit.
"""

import random
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python ``random`` states, in types ``torch.load`` accepts
    with ``weights_only=True`` (tensors, ints, floats, tuples)."""
    np_state = np.random.get_state()  # ('MT19937', keys uint32 (624,), pos, has_gauss, cached)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_cached_gaussian": float(np_state[4]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned (CUDA only when saved and present)."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    keys = states["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, states["numpy_pos"], states["numpy_has_gauss"],
                         states["numpy_cached_gaussian"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class TrainingRng:
    """The RNG bookkeeping of one module: states after the last training step, states to restore.

    The module calls one method per hook: ``after_train_step`` (``on_train_batch_end``),
    ``after_validation`` (``on_validation_end``), ``for_checkpoint`` (``on_save_checkpoint``),
    ``loaded`` (``on_load_checkpoint``) and ``on_train_start``.
    """

    def __init__(self) -> None:
        self._after_train_step: tuple[int, dict] | None = None  # (global_step, states)
        self._to_restore: dict | None = None  # from a checkpoint, applied in on_train_start

    def after_train_step(self, global_step: int) -> None:
        self._after_train_step = (global_step, rng_states())

    def after_validation(self, fitting: bool) -> None:
        """Put back the states of the last training step (validation's dataloader iterator draws a seed)."""
        if fitting and self._after_train_step is not None:
            set_rng_states(self._after_train_step[1])

    def for_checkpoint(self, global_step: int) -> dict[str, Any]:
        """The states a checkpoint at ``global_step`` stores: those right after that step's hooks
        when it is taken later (e.g. during validation), else the current ones."""
        states = rng_states()
        if self._after_train_step is not None:
            step, after_step = self._after_train_step
            if step == global_step:
                states = after_step
        return states

    def loaded(self, states: dict | None) -> None:
        self._to_restore = states

    def on_train_start(self, resuming: bool) -> None:
        """Restore the loaded states when resuming (``fit(ckpt_path=...)``), not after
        ``load_from_checkpoint`` + a new fit.

        Lightning restores weights, optimizer and loops before this hook; the dataloader
        iterator and the sanity check have drawn from the RNGs already, so restoring here
        continues the stream exactly where the checkpointed run left it.
        """
        if self._to_restore is not None and resuming:
            set_rng_states(self._to_restore)
        self._to_restore = None
