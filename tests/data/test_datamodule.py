"""TranslationDataModule: batch layout, splits, filters, custom files, argument checks."""

import shutil
import unicodedata

import pytest
import torch
from torch.utils.data import DataLoader

import lightning_slt.data.corpora as corpora
from lightning_slt.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Tokenizer,
    read_parallel,
    resolve_corpus,
)
from lightning_slt.data.checksums import UPSTREAM


def _normalized(text: str) -> str:
    """What sentencepiece's nmt_nfkc normalisation keeps of a sentence (spaces collapsed, NFKC)."""
    return unicodedata.normalize("NFKC", " ".join(text.split()))


def test_tokenizer_is_ready_without_a_trainer(make_data):
    data = make_data()
    assert data.trainer is None
    assert data.vocab_size == 1000  # what LightningCLI links into model.vocab_size
    assert data.tokenizer is data.tokenizer
    assert data.hparams.vocab_size == 1000 and data.hparams.max_tokens == 512


def test_training_batch_layout(make_data, data_root):
    data = make_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"src", "tgt_in", "tgt_out", "src_text", "ref_text", "index"}
    src_lines, tgt_lines = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root))
    tokenizer = data.tokenizer
    for row, line in enumerate(batch["index"].tolist()):
        assert batch["src_text"][row] == src_lines[line] and batch["ref_text"][row] == tgt_lines[line]
        src_ids = tokenizer.encode([src_lines[line]])[0]
        tgt_ids = tokenizer.encode([tgt_lines[line]])[0]
        src_row = batch["src"][row].tolist()
        assert src_row == src_ids + [EOS_ID] + [PAD_ID] * (len(src_row) - len(src_ids) - 1)
        tgt_in, tgt_out = batch["tgt_in"][row].tolist(), batch["tgt_out"][row].tolist()
        padding = [PAD_ID] * (len(tgt_in) - len(tgt_ids) - 1)
        assert tgt_in == [BOS_ID] + tgt_ids + padding
        assert tgt_out == tgt_ids + [EOS_ID] + padding
    assert batch["src"].dtype == batch["tgt_in"].dtype == batch["index"].dtype == torch.long
    assert batch["tgt_in"].shape == batch["tgt_out"].shape
    assert tokenizer.decode(batch["tgt_out"].tolist()) == [_normalized(text) for text in batch["ref_text"]]


def test_evaluation_keeps_every_sentence_in_length_order(make_data):
    data = make_data(eval_max_tokens=1024)
    data.setup("validate")
    loader = data.val_dataloader()
    batches = list(loader)
    assert batches and list(loader)[0]["index"].tolist() == batches[0]["index"].tolist()  # no shuffling
    indices = [i for batch in batches for i in batch["index"].tolist()]
    assert sorted(indices) == list(range(300))
    widths = [max(batch["src"].shape[1], batch["tgt_in"].shape[1]) for batch in batches]
    assert widths == sorted(widths)
    assert all(len(batch["index"]) * width <= 1024 for batch, width in zip(batches, widths))


def test_length_filter_drops_long_training_pairs_only(make_data):
    data = make_data(max_len=20, max_positions=128, eval_max_tokens=512)
    data.setup("fit")
    train = data.dataset("train")
    lengths = train.padded_lengths()
    assert lengths.max() <= 21 and len(train) == 814  # of 2000 pairs
    src, tgt = data._texts_of("train")
    kept = set(train.line_numbers.tolist())
    tokenizer = data.tokenizer
    dropped = [i for i in range(2000) if i not in kept]
    dropped_src = tokenizer.encode([src[i] for i in dropped])
    dropped_tgt = tokenizer.encode([tgt[i] for i in dropped])
    assert all(max(len(s), len(t)) > 20 for s, t in zip(dropped_src, dropped_tgt))
    assert len(data.dataset("valid")) == 300  # evaluation is never filtered


def test_evaluation_truncates_at_max_positions_with_a_warning(make_data):
    data = make_data(max_len=7, max_tokens=64, max_positions=8, eval_max_tokens=64)
    with pytest.warns(UserWarning, match=r"valid \(.*\): line\(s\) \d+.* of 300 have more than 7 sentencepiece pieces"):
        data.setup("validate")
    batches = list(data.val_dataloader())
    assert sum(len(batch["index"]) for batch in batches) == 300
    assert max(batch["src"].shape[1] for batch in batches) == 8
    assert max(batch["tgt_out"].shape[1] for batch in batches) == 8


def test_predict_reads_source_files(make_data, data_root):
    valid_en = data_root / "multi30k" / "valid.en.gz"
    data = make_data(predict_files=[str(valid_en), str(valid_en)])
    data.setup("predict")
    batches = list(data.predict_dataloader())
    assert set(batches[0]) == {"src", "src_text", "index"}
    assert sorted(i for batch in batches for i in batch["index"].tolist()) == list(range(2028))
    first = next(batch for batch in batches if 0 in batch["index"].tolist())
    row = first["index"].tolist().index(0)
    assert first["src_text"][row] == "A group of men are loading cotton onto a truck"


def test_custom_files_override_the_registry(make_data, data_root, tmp_path):
    train = [str(tmp_path / "my.en.gz"), str(tmp_path / "my.de.gz")]
    shutil.copyfile(data_root / "multi30k/train.en.gz", train[0])
    shutil.copyfile(data_root / "multi30k/train.de.gz", train[1])
    valid = [str(data_root / "multi30k/test.en.gz"), str(data_root / "multi30k/test.de.gz")]
    custom = make_data(corpus="tatoeba", data_root=str(tmp_path / "empty"), train_files=train, valid_files=valid)
    registry = make_data()
    assert custom.tokenizer.sha256 == registry.tokenizer.sha256  # same text -> same cached model
    custom.setup("fit")
    assert len(custom.dataset("valid")) == 300
    test_src, _ = read_parallel(*valid)
    assert custom.dataset("valid").src_text == test_src[:300]


def test_evaluation_only_corpus_needs_a_tokenizer(make_data, data_root):
    data = make_data(corpus="iwslt17", valid_split="valid", test_split="test")
    with pytest.raises(ValueError, match="corpus 'iwslt17' has no train split .*train_files=\\[src, tgt\\]"):
        data.vocab_size
    model = make_data().tokenizer.path
    data = make_data(corpus="iwslt17", spm_model=str(model), test_subset=None)
    data.setup("test")
    assert data.vocab_size == 1000 and len(data.dataset("test")) == 1138


def test_download_flag_fills_an_empty_root(make_data, data_root, tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    for relative, source in UPSTREAM.items():
        if relative.startswith("multi30k/"):
            (upstream / source.url_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_root / relative, upstream / source.url_path)
    monkeypatch.setattr(corpora, "DEFAULT_BASE_URL", upstream.as_uri())
    data = make_data(data_root=str(tmp_path / "root"), download=True)
    data.prepare_data()
    downloaded = (tmp_path / "root/multi30k/test2017.de.gz").read_bytes()
    assert downloaded == (data_root / "multi30k/test2017.de.gz").read_bytes()
    assert data.vocab_size == 1000


def test_loader_does_not_touch_the_global_rng(make_data):
    data = make_data()
    data.setup("fit")
    loader = data.train_dataloader()
    state = torch.get_rng_state()
    next(iter(loader))
    assert torch.equal(torch.get_rng_state(), state)
    # Why the DataLoader gets its own generator: without one, creating an iterator draws a seed.
    plain = DataLoader(data.dataset("train"), batch_sampler=loader.batch_sampler, collate_fn=loader.collate_fn)
    next(iter(plain))
    assert not torch.equal(torch.get_rng_state(), state)


def test_state_dict_is_empty_outside_fit(make_data):
    assert make_data().state_dict() == {}


def test_tokenizer_from_checkpoint_bytes(make_data):
    tokenizer = make_data().tokenizer
    assert Tokenizer.from_proto(tokenizer.model_proto).sha256 == tokenizer.sha256


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"corpus": "wmt15"}, r"corpus must be one of \['iwslt17', 'multi30k', 'tatoeba', 'wmt14'\], got 'wmt15'"),
        ({"tgt_lang": "es"}, r"corpus 'multi30k' has no pair 'en-es'"),
        ({"tgt_lang": "en"}, r"src_lang and tgt_lang must differ"),
        ({"train_files": ["a.en"]}, r"train_files must be \[src_path, tgt_path\], got 1 path"),
        ({"max_tokens": 100, "max_len": 128}, r"max_tokens=100 must be at least max_len \+ 1 = 129"),
        ({"eval_max_tokens": 512}, r"eval_max_tokens=512 must be at least max_positions=1024"),
        ({"max_len": 1024}, r"max_len must be in \[1, max_positions=1024\), got 1024"),
        ({"train_subset": 0}, r"train_subset must be a positive number of pairs or None"),
        ({"spm_model_type": "wordpiece"}, r"spm_model_type must be one of \['unigram', 'bpe'\], got 'wordpiece'"),
        ({"num_workers": -1}, r"num_workers must be >= 0"),
    ],
)
def test_bad_arguments_fail_in_init(make_data, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_data(**overrides)


def test_one_file_for_both_sides_is_refused_in_init(make_data, tmp_path):
    (tmp_path / "train.en").write_text("A dog.\n")
    (tmp_path / "link.en").symlink_to(tmp_path / "train.en")
    for files in ([str(tmp_path / "train.en")] * 2, [str(tmp_path / "train.en"), str(tmp_path / "link.en")]):
        with pytest.raises(ValueError, match=r"train_files names one file for both sides \(.*\): pass \[en file, de "
                                             r"file\], the source sentences and their translations"):
            make_data(train_files=files)
    with pytest.raises(ValueError, match="test_files names one file for both sides"):
        make_data(test_files=[str(tmp_path / "absent.de")] * 2)


def test_unknown_split_is_reported_at_first_use(make_data):
    data = make_data(valid_split="dev")
    expected = r"split of corpus 'multi30k' \(en-de\) must be one of \['train', 'valid', 'test', 'test2017'\], got 'dev'"
    with pytest.raises(ValueError, match=expected):
        data.setup("validate")
