"""Numerical failure guards: a NaN/inf loss stops training, a NaN/inf weight is never checkpointed.

Both messages name the newest checkpoint to resume from, which is therefore always finite.
"""

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

_FIX = "Lower lr, lengthen warm-up or set trainer.gradient_clip_val."


def check_finite_loss(loss: Tensor, global_step: int, trainer: Any) -> None:
    """Raise ``FloatingPointError`` when the training loss is NaN or infinite."""
    if bool(torch.isfinite(loss)):
        return
    raise FloatingPointError(
        f"training loss is {loss.item()} at global step {global_step}; {last_good_checkpoint(trainer)}. {_FIX}"
    )


def check_finite_weights(state_dict: Mapping[str, Tensor], global_step: int, trainer: Any | None) -> None:
    """Raise ``FloatingPointError`` when a weight about to be checkpointed is NaN or infinite.

    A weight that became NaN/inf (an inf gradient through Adam) must not overwrite the last good
    checkpoint: the loss check only fires one step later, naming that checkpoint.
    """
    broken = [name for name, tensor in state_dict.items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise FloatingPointError(
            f"weights {broken[:3]} became NaN or infinite by global step {global_step}; not writing a "
            f"checkpoint with them: {last_good_checkpoint(trainer) if trainer else 'no checkpoint kept'}. {_FIX}"
        )


def last_good_checkpoint(trainer: Any) -> str:
    """Where to resume after a numerical failure: the newest checkpoint any ModelCheckpoint wrote.

    Every callback is asked, not only ``trainer.checkpoint_callback`` (the first one): the
    experiment runner's first is best-by-BLEU, its ``last.ckpt`` comes from a second one.
    """
    paths = [path for callback in trainer.checkpoint_callbacks
             for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
             if path and os.path.isfile(path)]
    if not paths:
        return "no checkpoint was saved yet"
    return f"resume from the last good checkpoint {max(paths, key=os.path.getmtime)}"
