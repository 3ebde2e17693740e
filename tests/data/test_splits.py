"""A split's tokenized pairs: training drops pairs longer than max_len on either side and pairs with
an empty side (keeping line numbers, counted in one log line), evaluation keeps every pair (empty
sides with a warning) and cuts it to the position table with a warning naming the files,
prediction reads source files in order; an evaluation-only corpus is refused for training."""

import logging

import pytest

from lightning_slt.data.errors import EmptyCorpusError
from lightning_slt.data.splits import check_has_train_split, eval_pairs, predict_sources, train_pairs


class WordTokenizer:
    """Piece id = 3 + word length, one piece per word."""

    def encode(self, texts):
        return [[3 + len(word) for word in text.split()] for text in texts]


def test_training_drops_pairs_longer_than_max_len_on_either_side():
    src = ["a b", "a b c d", "a", "a b"]
    tgt = ["x", "x", "x y z w", "x y"]
    pairs = train_pairs(src, tgt, WordTokenizer(), max_len=2)
    assert pairs.line_numbers.tolist() == [0, 3]
    assert pairs.src_text == ["a b", "a b"] and pairs.ref_text == ["x", "x y"]
    assert pairs[1].src_ids.tolist() == [4, 4] and pairs[1].tgt_ids.tolist() == [4, 4]


def test_training_drops_pairs_with_an_empty_side_and_counts_them_with_the_long_ones(caplog):
    src = ["a b", "", "a", "   ", "a b c d", "a", ""]
    tgt = ["x", "x y", "\t", "x", "x", "x y", ""]
    with caplog.at_level(logging.INFO):
        pairs = train_pairs(src, tgt, WordTokenizer(), max_len=2)
    assert pairs.line_numbers.tolist() == [0, 5]
    assert pairs.src_text == ["a b", "a"] and pairs.ref_text == ["x", "x y"]
    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith("train:")]
    assert said == ["train: kept 2 of 7 pairs; dropped 1 longer than max_len=2 pieces and 4 with an empty source or "
                    "target line (line(s) 2, 3, 4, 7)"], said


def test_training_of_only_empty_pairs_is_an_empty_corpus():
    with pytest.raises(EmptyCorpusError, match="no training pair has text on both sides: each of the 3 pairs has an "
                                               "empty"):
        train_pairs(["", "a", " "], ["x", "", " "], WordTokenizer(), max_len=8)


def test_evaluation_keeps_pairs_with_an_empty_side_and_names_their_lines(tmp_path):
    files = (tmp_path / "test.en", tmp_path / "test.de")
    with pytest.warns(UserWarning) as caught:
        pairs = eval_pairs(["a", "", "b", "c"], ["x", "y", " ", "z"], WordTokenizer(), max_positions=8, role="test",
                           files=files)
    assert len(pairs) == 4 and pairs.src_text == ["a", "", "b", "c"] and pairs[1].src_ids.tolist() == []
    messages = [str(w.message) for w in caught]
    assert messages == [f"test ({files[0]}, {files[1]}): 2 of 4 pairs have an empty source or target line (line(s) 2, "
                        "3); they are kept, so that the scores are over the whole split and hypotheses stay "
                        "line-aligned: an empty source is still translated, an empty reference scores its hypothesis "
                        "as all wrong. Remove those lines from both files if they are gaps in the corpus"], messages


def test_no_pair_short_enough_is_an_empty_corpus():
    with pytest.raises(EmptyCorpusError, match="no training pair has at most max_len=1 pieces on both sides; raise max_len"):
        train_pairs(["a b"], ["x y"], WordTokenizer(), max_len=1)


def test_evaluation_keeps_every_pair_and_cuts_it_to_max_positions_minus_one(tmp_path):
    files = (tmp_path / "test.en", tmp_path / "test.de")
    with pytest.warns(UserWarning) as caught:
        pairs = eval_pairs(["a bb ccc dddd", "a"], ["x", "x y z"], WordTokenizer(), max_positions=3, role="test",
                           files=files)
    assert len(pairs) == 2 and pairs.line_numbers.tolist() == [0, 1]
    assert pairs[0].src_ids.tolist() == [4, 5] and pairs[1].tgt_ids.tolist() == [4, 4]
    assert pairs.src_text[0] == "a bb ccc dddd"  # the text itself is scored whole
    messages = [str(w.message) for w in caught]
    assert messages[0] == (f"test ({files[0]}, {files[1]}): line(s) 1 of 2 have more than 2 sentencepiece pieces "
                           "(max_positions - 1) and are cut to their first 2; split those lines, or use a model with a "
                           "larger max_positions; their scores will suffer")
    assert messages[1].startswith(f"test ({files[0]}, {files[1]}): line(s) 2 of 2 have more than 2")


def test_prediction_reads_every_file_in_order_as_sources_only(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo words\n")
    (tmp_path / "b.txt").write_text("three\n")
    pairs = predict_sources([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], WordTokenizer(), max_positions=64)
    assert pairs.src_text == ["one", "two words", "three"] and pairs.ref_text is None and pairs[2].tgt_ids is None
    with pytest.raises(ValueError, match=r"predict_dataloader needs predict_files=\[source files\]"):
        predict_sources(None, WordTokenizer(), max_positions=64)


def test_an_evaluation_only_corpus_is_refused_for_training_with_both_ways_out():
    check_has_train_split("multi30k", "de-en")
    check_has_train_split("wmt14", "en-fr")
    with pytest.raises(ValueError, match=r"corpus 'tatoeba' has no train split \(it is for evaluation only\): pass "
                                         r"train_files=\[src, tgt\] to train, or spm_model=<path> to only evaluate"):
        check_has_train_split("tatoeba", "en-de")
    with pytest.raises(ValueError, match="corpus 'iwslt17' has no train split"):
        check_has_train_split("iwslt17", "fr-en")
