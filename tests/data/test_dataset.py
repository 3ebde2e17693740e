"""One tokenized split in memory (flat int32 ids and offsets), and the collate function that pads
it: eos after the source, bos before and eos after the target, pad id 0."""

import pickle

import numpy as np
import torch

from lightning_slt.data.dataset import EncodedPairs, Example, collate_translation


def _pairs() -> EncodedPairs:
    return EncodedPairs([[5, 6, 7], [8]], [[9], [10, 11, 12, 13]], ["a b c", "d"], ["x", "y z"], [4, 9])


def test_items_are_the_ids_texts_and_line_numbers_given():
    pairs = _pairs()
    assert len(pairs) == 2
    item = pairs[1]
    assert isinstance(item, Example) and (item.index, item.src_text, item.ref_text) == (9, "d", "y z")
    assert item.src_ids.tolist() == [8] and item.tgt_ids.tolist() == [10, 11, 12, 13]
    assert item.src_ids.dtype == np.int32
    assert pairs.padded_lengths().tolist() == [[4, 2], [2, 5]]  # source + eos, bos + target


def test_a_split_pickles_compactly_for_dataloader_workers():
    again = pickle.loads(pickle.dumps(_pairs()))
    assert again[0].src_ids.tolist() == [5, 6, 7] and again.line_numbers.tolist() == [4, 9]


def test_collate_pads_with_zeros_and_adds_bos_and_eos():
    batch = collate_translation([_pairs()[0], _pairs()[1]])
    assert batch["src"].tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]
    assert batch["tgt_in"].tolist() == [[1, 9, 0, 0, 0], [1, 10, 11, 12, 13]]
    assert batch["tgt_out"].tolist() == [[9, 2, 0, 0, 0], [10, 11, 12, 13, 2]]
    assert batch["src"].dtype == batch["tgt_in"].dtype == torch.int64
    assert batch["index"].tolist() == [4, 9] and batch["src_text"] == ["a b c", "d"] and batch["ref_text"] == ["x", "y z"]


def test_source_only_data_collates_sources_only():
    sources = EncodedPairs([[3, 4], []], None, ["p", ""], None, [0, 1])
    assert sources[1].tgt_ids is None and sources[1].ref_text is None
    assert sources.padded_lengths().tolist() == [[3, 1], [1, 1]]  # an empty line is eos alone
    batch = collate_translation([sources[0], sources[1]])
    assert set(batch) == {"src", "src_text", "index"} and batch["src"].tolist() == [[3, 4, 2], [2, 0, 0]]
