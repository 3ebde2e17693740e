"""Raw-text translation: sources built as the datamodule builds them (pieces, eos, cut to the
position table with a warning), batched by length under a token budget, refused without a tokenizer."""

import warnings

import pytest

from lightning_slt.model.translate import encode_sources, length_batches, translate_sentences

from ._tiny import EOS, tiny_model


class WordTokenizer:
    """Piece id = 3 + word length: enough to check lengths, truncation and order."""

    def encode(self, texts):
        return [[3 + len(word) for word in text.split()] for text in texts]


def test_length_batches_respect_the_token_budget():
    lengths = [5, 1, 4, 2, 9, 3]
    order = sorted(range(6), key=lengths.__getitem__)
    assert length_batches(order, lengths, max_tokens=10) == [[1, 3, 5], [2, 0], [4]]  # 3x3, 2x5, 1x9


def test_length_batches_keep_an_oversized_sentence_alone():
    assert length_batches([0, 1, 2], [3, 20, 30], max_tokens=10) == [[0], [1], [2]]
    assert length_batches([], [], max_tokens=10) == []


def test_sources_end_in_eos_and_long_ones_are_cut_with_a_warning_naming_their_lines():
    sentences = ["a bb", "one two three four five six", ""]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources = encode_sources(WordTokenizer(), sentences, max_positions=5, eos_id=EOS)
    assert sources == [[4, 5, EOS], [6, 6, 8, 7, EOS], [EOS]]  # 4 pieces at most, then eos
    assert [str(w.message) for w in caught] == [
        "translate input: line(s) 2 of 3 have more than 4 sentencepiece pieces (max_positions - 1) and are cut "
        "to their first 4; split those lines, or use a model with a larger max_positions"]


def test_translate_checks_its_budget_first_and_needs_a_tokenizer_only_for_real_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_tokens must be >= 1, got 0"):
        translate_sentences(model, None, ["x"], 1, 1.0, 1.0, 5, max_tokens=0, device="cpu")
    assert translate_sentences(model, None, [], 1, 1.0, 1.0, 5, max_tokens=100, device="cpu") == []
    with pytest.raises(RuntimeError, match="no tokenizer attached: run with a TranslationDataModule"):
        translate_sentences(model, None, ["x"], 1, 1.0, 1.0, 5, max_tokens=100, device="cpu")
