"""Errors that used to come from deep inside a library now name the file, the fault and the fix,
before any work: sentencepiece's internal errors, a damaged tokenizer cache, a read-only checkpoint
folder. Each case is one bad input of the suite's figures line."""

from __future__ import annotations

import os
import stat

import pytest

from lightning_slt.atomic import check_writable
from lightning_slt.data import CorpusEncodingError, train_tokenizer
from lightning_slt.data.text import read_lines

from .tiny import file_states

TOKENIZER_CASES = {  # id: (sentences, vocab_size, what the message says)
    "every_line_too_long": (["x" * 5000 + " y"] * 20, 30, "no sentence of the training text (20 lines) is short enough"),
    "vocabulary_below_the_character_set": (["".join(chr(0x400 + i) for i in range(60)) + " abc"] * 20, 30,
                                           "vocab_size=30 is smaller than the 68 pieces"),
}


@pytest.mark.parametrize("case", TOKENIZER_CASES)
def test_sentencepiece_internal_errors_are_said_with_the_fix(case, tmp_path, tally):
    sentences, vocab, says = TOKENIZER_CASES[case]
    with pytest.raises(ValueError) as info:
        train_tokenizer(sentences, tmp_path / "cache", vocab_size=vocab)
    assert says in str(info.value), str(info.value)
    assert not [p for p in (tmp_path / "cache").glob("*.model")]
    tally("bad_inputs")


def test_cr_only_corpus_is_refused_naming_the_file(tmp_path, tally):
    path = tmp_path / "train.en"
    path.write_bytes(b"A dog runs.\rTwo men.\rA cat.\r")
    with pytest.raises(CorpusEncodingError) as info:
        read_lines(path)
    assert f"{path}: lines end in CR only" in str(info.value) and "tr '\\r' '\\n'" in str(info.value)
    tally("bad_inputs")


def test_damaged_tokenizer_cache_is_named_and_new_ones_are_readable(tmp_path, tally):
    sentences = ["a dog runs on the beach", "two men sleep", "a cat sits"] * 20
    tokenizer = train_tokenizer(sentences, tmp_path, vocab_size=24)
    assert stat.S_IMODE(os.stat(tokenizer.path).st_mode) == 0o666 & ~_umask()  # not 0600: a cache may be shared
    tokenizer.path.write_bytes(b"garbage")
    before = file_states(tmp_path)
    with pytest.raises(ValueError) as info:
        train_tokenizer(sentences, tmp_path, vocab_size=24)
    assert f"the tokenizer cache file {tokenizer.path} is damaged" in str(info.value) and "delete it" in str(info.value)
    assert file_states(tmp_path) == before
    tally("bad_inputs")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_read_only_checkpoint_folder_is_refused_before_training(tmp_path, tally):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if os.geteuid() == 0:
        if os.system(f"chattr +i {folder} 2>/dev/null") != 0:
            pytest.skip("cannot make a folder read-only as root here (no chattr)")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(OSError) as info:
            check_writable(folder / "sub", "the checkpoint folder", "make it writable")
        assert f"the checkpoint folder {folder / 'sub'} is not writable ({folder}:" in str(info.value)
    finally:
        os.system(f"chattr -i {folder} 2>/dev/null") if os.geteuid() == 0 else folder.chmod(0o755)
    assert list(folder.iterdir()) == []
    tally("bad_inputs")
