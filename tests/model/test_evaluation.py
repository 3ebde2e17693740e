"""Evaluation records: per-sentence sums from per-token values, duplicates of a padded distributed
sampler dropped by index, and the split's scores and logged values."""

import pytest
import torch

from lightning_slt.model.evaluation import EvalRecord, gather_objects, sentence_records, summarize


def test_sentence_records_sum_each_sentences_tokens():
    mask = torch.tensor([[True, True, False], [True, True, True]])  # (B, T): 2 and 3 target tokens
    loss = torch.tensor([1.0, 2.0, 0.5, 0.25, 0.25])  # (N,) over the True entries, row by row
    nll = torch.tensor([0.5, 1.0, 0.5, 0.5, 1.0])
    records = sentence_records([7, 3], ["h7", "h3"], ["r7", "r3"], loss, nll, mask)
    assert records == [EvalRecord(7, "h7", "r7", 3.0, 1.5, 2), EvalRecord(3, "h3", "r3", 1.0, 2.0, 3)]


def test_summary_drops_padding_duplicates_sorts_by_line_and_averages_per_token():
    # line 1 twice, as a distributed sampler pads a split to a multiple of the world size
    records = [EvalRecord(1, "a cat sat on the mat", "a cat sat on the mat", 4.0, 2.0, 4),
               EvalRecord(0, "the dog ran to the park", "the dog ran to the park", 2.0, 1.0, 4),
               EvalRecord(1, "a cat sat on the mat", "a cat sat on the mat", 4.0, 2.0, 4)]
    summary = summarize(records, world_size=1, prefix="val")
    assert [r.index for r in summary.records] == [0, 1]
    assert summary.values["val/loss"] == 6.0 / 8 and summary.values["val/nll"] == 3.0 / 8
    assert summary.values["val/bleu"] == pytest.approx(100.0) and summary.values["val/chrf"] == pytest.approx(100.0)
    assert summary.values["val/ter"] == 0.0
    assert summary.scores.n_sentences == 2 and summary.scores.signatures["bleu"].startswith("nrefs:1|case:mixed")


def test_single_process_gathers_its_own_records_and_an_empty_split_is_refused():
    records = [EvalRecord(0, "x", "x", 1.0, 1.0, 1)]
    assert gather_objects(records, world_size=1) == records
    assert gather_objects(records, world_size=2) == records  # no process group: nothing to gather
    with pytest.raises(ValueError, match="hypotheses is empty: corpus scores need at least one sentence"):
        summarize([], world_size=1, prefix="test")
