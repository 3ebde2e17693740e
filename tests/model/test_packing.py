"""Packing the real tokens of a right-padded batch as rows: positions, pack/unpack round trips, the
scatter's gradient, per-sentence broadcast dropout and the attention key mask."""

import torch

from lightning_slt.model.packing import Packing, key_mask

PAD_MASK = torch.tensor([[False, False, False], [False, True, True]])  # lengths 3 and 1


def test_packing_indexes_the_real_tokens_and_their_positions():
    packing = Packing.of(PAD_MASK)
    assert (packing.batch, packing.length) == (2, 3) and packing.index.tolist() == [0, 1, 2, 3]
    assert packing.positions(torch.device("cpu")).tolist() == [0, 1, 2, 0]
    unpadded = Packing.of(torch.zeros(2, 2, dtype=torch.bool))
    assert unpadded.index is None and unpadded.positions(torch.device("cpu")).tolist() == [0, 1, 0, 1]


def test_pack_then_unpack_restores_the_batch_with_zeros_at_padding():
    packing = Packing.of(PAD_MASK)
    padded = torch.arange(1.0, 13.0).view(2, 3, 2)
    rows = packing.pack(padded)
    assert rows.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert packing.unpack(rows).tolist() == [[[1, 2], [3, 4], [5, 6]], [[7, 8], [0, 0], [0, 0]]]
    whole = Packing.of(torch.zeros(2, 3, dtype=torch.bool))
    assert whole.pack(padded).data_ptr() == padded.data_ptr()  # nothing padded: a view, no copy
    assert torch.equal(whole.unpack(whole.pack(padded)), padded)


def test_unpack_backward_selects_the_gradient_of_the_real_rows():
    packing = Packing.of(PAD_MASK)
    rows = torch.ones(4, 2, requires_grad=True)
    weights = torch.arange(12.0).view(2, 3, 2)
    (packing.unpack(rows) * weights).sum().backward()
    assert rows.grad.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_pack_heads_flattens_heads_per_real_token():
    packing = Packing.of(PAD_MASK)
    heads = torch.arange(24.0).view(2, 2, 3, 2)  # (B, H, L, hd)
    rows = packing.pack_heads(heads)
    assert rows.shape == (4, 4)
    assert rows[3].tolist() == [12.0, 13.0, 18.0, 19.0]  # sentence 1, position 0: head 0 then head 1


def test_broadcast_dropout_draws_one_mask_per_sentence_and_channel():
    torch.manual_seed(0)
    packing = Packing.of(torch.tensor([[False, False, False, False], [False, False, True, True]]))
    rows = torch.ones(6, 64)
    dropped = packing.dropout(rows, 0.5, training=True, broadcast=True)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # kept entries scaled by 1 / (1 - p)
    assert all(torch.equal(dropped[i], dropped[0]) for i in range(4))  # sentence 0's four rows
    assert torch.equal(dropped[4], dropped[5]) and not torch.equal(dropped[0], dropped[4])
    assert packing.dropout(rows, 0.5, training=False, broadcast=True) is rows
    assert packing.dropout(rows, 0.0, training=True, broadcast=False) is rows


def test_key_mask_is_none_without_padding_and_says_may_attend_otherwise():
    assert key_mask(torch.zeros(2, 3, dtype=torch.bool)) is None
    mask = key_mask(PAD_MASK)
    assert mask.shape == (2, 1, 1, 3) and mask[:, 0, 0].tolist() == [[True, True, True], [True, False, False]]
