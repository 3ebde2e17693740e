"""The Transformer's building blocks: the sinusoidal position table, the feed-forward block, the
pre-/post-norm residual wiring and the stacks' final LayerNorm."""

import math

import pytest
import torch

from lightning_slt.model.layers import LAYER_NORM_EPS, Decoder, Encoder, EncoderLayer, FeedForward, sinusoidal_positions
from lightning_slt.model.packing import Packing

from ._tiny import tiny_config, tiny_model


def test_positions_are_tensor2tensor_timing_signal():
    model = tiny_model()
    table = model.positions
    assert table.shape == (1024, 32)
    assert torch.equal(table[0], torch.cat([torch.zeros(16), torch.ones(16)]))
    position, channel = 5, 3  # sin(p / 10^(4 c / (D/2 - 1)))
    assert table[position, channel].item() == pytest.approx(math.sin(position / 1e4 ** (channel / 15)), abs=1e-6)
    assert table[position, 16 + channel].item() == pytest.approx(math.cos(position / 1e4 ** (channel / 15)), abs=1e-6)


def test_position_table_of_an_odd_width_has_a_zero_last_channel():
    table = sinusoidal_positions(4, 5)  # two sines, two cosines, one zero channel
    assert table.shape == (4, 5) and table.dtype == torch.float32
    assert torch.equal(table[:, 4], torch.zeros(4))
    assert torch.equal(table[0], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0]))
    assert table[2, 1].item() == pytest.approx(math.sin(2 / 1e4), abs=1e-7)  # timescale 10^4 at the last sine


def test_feed_forward_is_fc2_of_relu_of_fc1_and_drops_out_only_in_training():
    torch.manual_seed(0)
    ffn = FeedForward(4, 8, activation_dropout=0.5, dropout_broadcast=False).eval()
    rows = torch.randn(3, 4)
    packing = Packing.of(torch.zeros(1, 3, dtype=torch.bool))
    expected = ffn.fc2(torch.relu(ffn.fc1(rows)))
    assert torch.equal(ffn(rows, packing), expected)
    assert not torch.equal(ffn.train()(rows, packing), expected)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_post_norm_layers_end_normalised_and_pre_norm_stacks_add_a_final_norm(pre_norm):
    config = tiny_config(pre_norm=pre_norm, dropout=0.0)
    torch.manual_seed(0)
    layer = EncoderLayer(config).eval()
    rows = 3.0 + 5.0 * torch.randn(6, config.d_model)
    out = layer(rows, Packing.of(torch.zeros(2, 3, dtype=torch.bool)), None)
    normalised = torch.allclose(out.mean(dim=1), torch.zeros(6), atol=1e-5) and torch.allclose(
        out.var(dim=1, unbiased=False), torch.ones(6), atol=1e-3)
    assert normalised == (not pre_norm)  # norm(x + f(x)) vs x + f(norm(x))
    assert (Encoder(config).norm is not None) == (Decoder(config).norm is not None) == pre_norm
    assert len(Encoder(config).layers) == config.encoder_layers == 2 and len(Decoder(config).layers) == 2
    assert layer.ffn_norm.eps == LAYER_NORM_EPS == 1e-6
