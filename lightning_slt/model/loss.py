"""Label-smoothed cross entropy with a fused, in-place backward.

The vocabulary-sized (N, V) tensors are the largest of a training step on a small model
(8k vocabulary, d_model 256: the logits are ~10x the size of any activation), so the loss is
bound by memory traffic, not arithmetic. Composed from ``log_softmax``, ``gather`` and
``mean``, autograd writes and reads several (N, V) temporaries (a zero tensor for the gather's
gradient, the sum of two gradients, the log-softmax backward). Here the backward is the closed
form

    d loss_i / d logits_iv = p_iv - (1 - eps) * [v = y_i] - eps / V

written over the saved log-probabilities in place: no new (N, V) tensor at all. Measured on
transformer_cpu shapes (N 3800, V 8000, fp32, 2 threads): the loss part of forward + backward
takes 55 ms instead of 80 ms (``F.cross_entropy(label_smoothing=...)``: 70 ms).

Because the backward consumes its saved buffer, a second backward through the same graph
(``retain_graph=True``) is refused by autograd's in-place check instead of returning wrong
gradients.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_slt.model.transformer import Transformer


class _LabelSmoothedCrossEntropy(torch.autograd.Function):
    """Per-token (loss, nll) from logits; saves only the (N, V) log-probabilities."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
        lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32 if logits.dtype != torch.float64 else None)  # (N, V)
        nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
        smooth = -lprobs.mean(dim=-1)  # (N,)
        ctx.save_for_backward(lprobs, target)
        ctx.epsilon = epsilon
        return (1.0 - epsilon) * nll + epsilon * smooth, nll

    @staticmethod
    def backward(ctx, grad_loss: Tensor | None, grad_nll: Tensor | None):
        lprobs, target = ctx.saved_tensors
        epsilon = ctx.epsilon
        zeros = lprobs.new_zeros(lprobs.size(0))
        grad_loss = zeros if grad_loss is None else grad_loss
        grad_nll = zeros if grad_nll is None else grad_nll
        # p * (g_loss + g_nll) - eps / V * g_loss - [v = y] * ((1 - eps) * g_loss + g_nll)
        grad = lprobs.exp_()  # (N, V) probabilities, in the saved buffer
        grad.mul_((grad_loss + grad_nll).unsqueeze(-1)).sub_((epsilon / lprobs.size(-1)) * grad_loss.unsqueeze(-1))
        grad.scatter_add_(-1, target.unsqueeze(-1), -((1.0 - epsilon) * grad_loss + grad_nll).unsqueeze(-1))
        return grad, None, None  # autograd casts it to a bf16/fp16 input's dtype


def label_smoothed_cross_entropy(logits: Tensor, target: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """Per-token label-smoothed loss and plain NLL, as ``F.cross_entropy(label_smoothing=epsilon)``.

    loss_i = (1 - eps) * nll_i + eps * mean_v(-log p_iv): the smoothing mass is spread uniformly
    over the vocabulary (Szegedy et al. 2016; tensor2tensor's label_smoothing=0.1).

    Args:
        logits: (N, V) unnormalised scores of the N non-padding target positions; the loss is
            computed in fp32 (a bf16/fp16 input is upcast inside the log-softmax, into a
            temporary freed before the backward; only the fp32 log-probabilities are saved) or
            fp64.
        target: (N,) gold token ids.
        epsilon: smoothing mass in [0, 1).

    Returns:
        loss (N,) and nll (N,), both in nats; sum and divide by the token count for the mean.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon!r}")
    return _LabelSmoothedCrossEntropy.apply(logits, target, float(epsilon))


def token_losses(model: Transformer, batch: dict[str, Tensor], epsilon: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token (loss, nll) (N,) on the N non-padding target positions of a batch, and their mask (B, T).

    The decoder's hidden states are selected first and projected to the vocabulary afterwards:
    no vocabulary GEMM on pads.
    """
    hidden = model(batch["src"], batch["tgt_in"])  # (B, T, D)
    target_mask = batch["tgt_out"].ne(model.config.pad_id)  # (B, T)
    logits = model.logits(hidden[target_mask])  # (N, V)
    loss, nll = label_smoothed_cross_entropy(logits, batch["tgt_out"][target_mask], epsilon)
    return loss, nll, target_mask
