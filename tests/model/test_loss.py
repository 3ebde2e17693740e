"""The fused label-smoothed cross entropy against torch's own, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from lightning_slt.model.loss import label_smoothed_cross_entropy


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_loss_and_nll_equal_torch_cross_entropy(epsilon):
    torch.manual_seed(0)
    logits, target = torch.randn(7, 11, dtype=torch.float64), torch.randint(0, 11, (7,))
    loss, nll = label_smoothed_cross_entropy(logits, target, epsilon)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, label_smoothing=epsilon, reduction="none"))
    torch.testing.assert_close(nll, F.cross_entropy(logits, target, reduction="none"))


def test_gradient_equals_torch_cross_entropy_for_a_weighted_mix_of_both_outputs():
    torch.manual_seed(0)
    logits = torch.randn(9, 13, dtype=torch.float64, requires_grad=True)
    target, weights = torch.randint(0, 13, (9,)), torch.rand(9, dtype=torch.float64)
    loss, nll = label_smoothed_cross_entropy(logits, target, 0.1)
    (ours,) = torch.autograd.grad((loss * weights).sum() + 0.5 * nll.sum(), logits)
    reference = (F.cross_entropy(logits, target, label_smoothing=0.1, reduction="none") * weights).sum() \
        + 0.5 * F.cross_entropy(logits, target, reduction="sum")
    (expected,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("output", [0, 1])
def test_gradient_through_either_output_alone(output):
    torch.manual_seed(0)
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 5, 2, 2])
    (ours,) = torch.autograd.grad(label_smoothed_cross_entropy(logits, target, 0.2)[output].sum(), logits)
    reference = F.cross_entropy(logits, target, label_smoothing=0.2 if output == 0 else 0.0, reduction="sum")
    torch.testing.assert_close(ours, torch.autograd.grad(reference, logits)[0])


def test_bf16_logits_are_upcast_and_the_gradient_returns_in_bf16():
    torch.manual_seed(0)
    logits = torch.randn(5, 8).to(torch.bfloat16).requires_grad_()
    target = torch.randint(0, 8, (5,))
    loss, _ = label_smoothed_cross_entropy(logits, target, 0.1)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), target, label_smoothing=0.1, reduction="none"))
    loss.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_epsilon_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\), got 1.0"):
        label_smoothed_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1.0)


def test_a_second_backward_through_the_consumed_buffer_is_refused():
    logits = torch.randn(3, 5, requires_grad=True)
    loss, _ = label_smoothed_cross_entropy(logits, torch.tensor([0, 1, 2]), 0.1)
    loss.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.sum().backward()
