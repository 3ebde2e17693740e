"""Joint sentencepiece: content-hash cache, fixed special ids, batched round trip."""

import io
import pickle

import pytest
import sentencepiece as spm

from lightning_slt.data import Tokenizer, read_parallel, resolve_corpus, train_tokenizer


@pytest.fixture(scope="module")
def sentences(data_root) -> list[str]:
    src, tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root))
    return src[:2000] + tgt[:2000]


def test_second_construction_hits_the_cache(sentences, tmp_path, monkeypatch):
    first = train_tokenizer(sentences, tmp_path, vocab_size=1000)
    assert first.path.parent == tmp_path and first.path.name.startswith("spm-unigram-1000-")
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".model"] == [first.path.name]
    mtime = first.path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("sentencepiece retrained although the model is cached")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", no_training)
    second = train_tokenizer(list(sentences), tmp_path, vocab_size=1000)
    assert second.model_proto == first.model_proto
    assert second.path.stat().st_mtime_ns == mtime
    # Any change of text or options is a new cache entry (and would need training).
    with pytest.raises(AssertionError, match="retrained"):
        train_tokenizer(sentences[:-1], tmp_path, vocab_size=1000)
    with pytest.raises(AssertionError, match="retrained"):
        train_tokenizer(sentences, tmp_path, vocab_size=1000, model_type="bpe")


def test_special_ids_and_round_trip(sentences, spm_cache):
    tokenizer = train_tokenizer(sentences, spm_cache, vocab_size=1000)
    assert tokenizer.vocab_size == 1000
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    texts = ["Two young, White males are outside near many bushes.", "Ein Hund läuft über die Wiese."]
    ids = tokenizer.encode(texts)
    assert len(ids) == 2 and all(min(sequence) > 3 for sequence in ids)  # no bos/eos/unk added
    assert tokenizer.decode(ids) == texts
    # Raw decoder output: bos first, eos, then garbage and padding that must be ignored.
    assert tokenizer.decode([[1] + ids[1] + [2] + ids[0] + [0, 0]]) == [texts[1]]
    with pytest.raises(TypeError, match="list of sentences"):
        tokenizer.encode(texts[0])


def test_model_travels_as_bytes(sentences, tmp_path):
    tokenizer = train_tokenizer(sentences, tmp_path, vocab_size=1000, model_type="bpe")
    assert tokenizer.model_proto == tokenizer.path.read_bytes()
    for copy in (
        Tokenizer.from_proto(tokenizer.model_proto),
        Tokenizer.from_file(tokenizer.path),
        pickle.loads(pickle.dumps(tokenizer)),
    ):
        assert copy.sha256 == tokenizer.sha256
        assert copy.encode(sentences[:50]) == tokenizer.encode(sentences[:50])


def test_training_is_deterministic_across_caches(sentences, spm_cache, tmp_path):
    first = train_tokenizer(sentences, spm_cache, vocab_size=1000)
    second = train_tokenizer(sentences, tmp_path, vocab_size=1000)
    assert first.sha256 == second.sha256  # DDP ranks training at once agree


def test_too_large_vocabulary_is_a_clear_error(sentences, tmp_path):
    with pytest.raises(ValueError, match=r"vocab_size=20000 is too large .*Lower vocab_size"):
        train_tokenizer(sentences[:200], tmp_path, vocab_size=20000)
    assert not list(tmp_path.glob("*.model"))


def test_text_of_only_blank_lines_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no text in the training text: all 60 lines are empty or only spaces, so "
                                         r"there is nothing to train the tokenizer on"):
        train_tokenizer(["", "  ", "\t"] * 20, tmp_path, vocab_size=50)
    assert not list(tmp_path.glob("*.model"))


def test_foreign_special_ids_are_refused(sentences, tmp_path):
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=writer, vocab_size=500, minloglevel=2)
    (tmp_path / "default_ids.model").write_bytes(writer.getvalue())
    with pytest.raises(ValueError, match=r"has special ids .*'pad_id': -1.*--pad_id=0 --bos_id=1"):
        Tokenizer.from_file(tmp_path / "default_ids.model")
