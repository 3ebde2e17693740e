"""The decoder's key/value buffer: appends in place, doubles when full, reads back what was written
in (N, H, t, hd), and reorders rows into a new buffer."""

import torch

from lightning_slt.model.kv_cache import DecoderCache, KVBuffer


def _kv(n, heads, t, head_dim, start):
    values = torch.arange(start, start + n * heads * t * head_dim, dtype=torch.float32)
    return values.view(n, heads, t, head_dim)


def test_appended_tokens_read_back_as_one_sequence_and_capacity_doubles():
    like = torch.zeros(1, dtype=torch.float64)
    buffer = KVBuffer.empty(like, batch=2, heads=3, head_dim=4, capacity=2)
    assert buffer.k.shape == (2, 2, 3, 4) and buffer.k.dtype == torch.float64 and buffer.batch_size == 2
    first, second = _kv(2, 3, 1, 4, 0).double(), _kv(2, 3, 2, 4, 100).double()
    keys, values = buffer.append(first, -first)
    assert keys.shape == (2, 3, 1, 4) and torch.equal(keys, first) and torch.equal(values, -first)
    keys, values = buffer.append(second, -second)  # 3 tokens > capacity 2: grows to max(3, 2 * 2)
    assert buffer.k.size(0) == 4 and buffer.length == 3
    assert torch.equal(keys, torch.cat([first, second], dim=2)) and torch.equal(values, -torch.cat([first, second], 2))
    assert keys.stride()[-1] == 1  # head dims stay unit-stride for SDPA


def test_select_reorders_rows_into_a_new_buffer_of_the_same_capacity():
    buffer = KVBuffer.empty(torch.zeros(1), batch=3, heads=1, head_dim=2, capacity=4)
    written = _kv(3, 1, 2, 2, 0)
    buffer.append(written, written + 1)
    picked = buffer.select(torch.tensor([2, 2, 0]))
    assert picked is not buffer and picked.k.size(0) == 4 and picked.length == 2 and picked.batch_size == 3
    keys, values = picked.append(torch.zeros(3, 1, 0, 2), torch.zeros(3, 1, 0, 2))  # read back, nothing added
    assert torch.equal(keys, written[[2, 2, 0]]) and torch.equal(values, written[[2, 2, 0]] + 1)
    assert buffer.length == 2 and torch.equal(buffer.append(torch.zeros(3, 1, 0, 2), torch.zeros(3, 1, 0, 2))[0], written)


def test_select_keeps_gradients_when_the_buffer_needs_them():
    keys = torch.randn(4, 2, 1, 2, requires_grad=True)
    buffer = KVBuffer(keys, keys * 2, length=3)
    picked = buffer.select(torch.tensor([1, 0]))
    picked.k[:3].sum().backward()
    assert torch.equal(keys.grad[:3], torch.ones(3, 2, 1, 2)) and torch.equal(keys.grad[3], torch.zeros(2, 1, 2))


def test_decoder_cache_reports_the_decoded_length_and_hypothesis_rows():
    layers = [KVBuffer.empty(torch.zeros(1), batch=4, heads=2, head_dim=3) for _ in range(2)]
    for layer in layers:
        layer.append(torch.zeros(4, 2, 5, 3), torch.zeros(4, 2, 5, 3))
    cache = DecoderCache(layers, [torch.zeros(2, 2, 7, 3)] * 2, [torch.zeros(2, 2, 7, 3)] * 2, None, group=2)
    assert (cache.length, cache.batch_size, cache.group) == (5, 4, 2)
