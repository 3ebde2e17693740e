"""Numerical failure guards: a NaN/inf loss or weight raises, naming the step and the newest
checkpoint to resume from."""

import math
import os
from types import SimpleNamespace

import pytest
import torch

from lightning_slt.model.finite import check_finite_loss, check_finite_weights, last_good_checkpoint

FIX = "Lower lr, lengthen warm-up or set trainer.gradient_clip_val."


def _trainer(*callbacks):
    return SimpleNamespace(checkpoint_callbacks=list(callbacks))


def test_the_newest_checkpoint_of_any_checkpoint_callback_is_named(tmp_path):
    best, last = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    best.write_bytes(b"b")
    last.write_bytes(b"l")
    os.utime(best, (1_000, 1_000))
    os.utime(last, (2_000, 2_000))
    by_bleu = SimpleNamespace(best_model_path=str(best), last_model_path="")
    by_step = SimpleNamespace(best_model_path="", last_model_path=str(last))
    assert last_good_checkpoint(_trainer(by_bleu, by_step)) == f"resume from the last good checkpoint {last}"
    gone = SimpleNamespace(best_model_path=str(tmp_path / "deleted.ckpt"), last_model_path="")
    assert last_good_checkpoint(_trainer(gone)) == "no checkpoint was saved yet"


def test_a_finite_loss_passes_and_nan_or_inf_stops_training_naming_the_step():
    check_finite_loss(torch.tensor(2.5), 7, _trainer())
    with pytest.raises(FloatingPointError) as info:
        check_finite_loss(torch.tensor(math.nan), 7, _trainer())
    assert str(info.value) == f"training loss is nan at global step 7; no checkpoint was saved yet. {FIX}"
    with pytest.raises(FloatingPointError, match="training loss is -inf at global step 0"):
        check_finite_loss(torch.tensor(-math.inf), 0, _trainer())


def test_weights_that_became_nan_are_named_and_never_checkpointed():
    state = {"ok": torch.ones(2), "steps": torch.tensor([3]), "w1": torch.tensor([1.0, math.nan]),
             "w2": torch.tensor([math.inf]), "w3": torch.tensor([math.nan]), "w4": torch.tensor([-math.inf])}
    with pytest.raises(FloatingPointError) as info:
        check_finite_weights(state, 12, None)
    assert str(info.value) == ("weights ['w1', 'w2', 'w3'] became NaN or infinite by global step 12; not writing a "
                               f"checkpoint with them: no checkpoint kept. {FIX}")
    check_finite_weights({"ok": torch.ones(2), "steps": torch.tensor([3])}, 12, _trainer())
