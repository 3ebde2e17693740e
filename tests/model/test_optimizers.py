"""The optimizer of a run: AdamW (fused on CPU) or Adafactor, two groups by nanoGPT's rule (matrices
and embeddings decay, vectors do not), and its arguments refused naming the value."""

import pytest
import torch
from torch import nn

from lightning_slt.model.optimizers import OPTIMIZERS, build_optimizer, check_optimizer_args


def _model():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.LayerNorm(3))
    model[0].weight.requires_grad_(False)  # frozen: in no group
    return model


def test_adam_is_fused_adamw_with_decay_on_matrices_only():
    model = _model()
    optimizer = build_optimizer(model.parameters(), "adam", lr=0.5, adam_betas=(0.9, 0.98), adam_eps=1e-9,
                                weight_decay=0.01)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["fused"] is True
    decayed, plain = optimizer.param_groups
    assert [p.shape for p in decayed["params"]] == [(3, 4)]
    assert [p.shape for p in plain["params"]] == [(3,), (3,), (3,)]  # linear bias, norm weight and bias
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.01, 0.0)
    assert (decayed["lr"], decayed["betas"], decayed["eps"]) == (0.5, (0.9, 0.98), 1e-9)


def test_adafactor_takes_the_same_groups():
    optimizer = build_optimizer(_model().parameters(), "adafactor", lr=0.01, adam_betas=(0.9, 0.98), adam_eps=1e-9,
                                weight_decay=0.1)
    assert type(optimizer) is torch.optim.Adafactor and OPTIMIZERS == ("adam", "adafactor")
    assert [len(g["params"]) for g in optimizer.param_groups] == [1, 3]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize(("args", "message"), [
    (("sgd", 1e-3, (0.9, 0.98), 0.0), "optimizer must be 'adam' or 'adafactor', got 'sgd'"),
    (("adam", 0.0, (0.9, 0.98), 0.0), "lr must be > 0, got 0.0"),
    (("adam", 1e-3, (0.9, 0.98), -0.1), "weight_decay must be >= 0, got -0.1"),
    (("adam", 1e-3, (0.9, 1.0), 0.0), r"adam_betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (("adam", 1e-3, (0.9,), 0.0), r"adam_betas must be two numbers in \[0, 1\), got \(0.9,\)"),
])
def test_bad_arguments_are_named_with_their_value(args, message):
    with pytest.raises(ValueError, match=message):
        check_optimizer_args(*args)
    check_optimizer_args("adafactor", 1e-3, (0.0, 0.999), 0.0)
