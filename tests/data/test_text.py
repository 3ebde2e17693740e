"""Reading parallel text: plain and gzip, and one clear error per kind of bad input."""

import gzip

import pytest

from lightning_slt.data import (
    CorpusEncodingError,
    CorpusNotFoundError,
    EmptyCorpusError,
    MisalignedCorpusError,
    TranslationDataModule,
    read_lines,
    read_parallel,
)


def test_plain_and_gzip_read_the_same_lines(tmp_path):
    text = "Ein Satz.\nZweiter\u2028Satz mit Zeilentrenner.\r\n\nletzte Zeile\n"
    (tmp_path / "a.txt").write_bytes(("\ufeff" + text).encode())
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode()))
    expected = ["Ein Satz.", "Zweiter\u2028Satz mit Zeilentrenner.", "", "letzte Zeile"]
    assert read_lines(tmp_path / "a.txt") == expected  # BOM, CRLF dropped; U+2028 is not a break
    assert read_lines(tmp_path / "a.txt.gz") == expected
    (tmp_path / "no_final_newline").write_text("one\ntwo")
    assert read_lines(tmp_path / "no_final_newline") == ["one", "two"]


def test_misaligned_names_both_files_and_both_counts(tmp_path):
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    src.write_text("a\nb\nc\n")
    tgt.write_text("x\ny\n")
    with pytest.raises(MisalignedCorpusError) as raised:
        read_parallel(src, tgt)
    assert str(raised.value).startswith(f"misaligned parallel files: {src} has 3 lines but {tgt} has 2 lines.")
    assert isinstance(raised.value, ValueError)


def test_missing_file_is_named(tmp_path):
    (tmp_path / "train.en").write_text("a\n")
    with pytest.raises(CorpusNotFoundError, match=f"corpus file not found: {tmp_path / 'train.de'}"):
        read_parallel(tmp_path / "train.en", tmp_path / "train.de")


def test_empty_corpus(tmp_path):
    (tmp_path / "e.en").write_text("")
    (tmp_path / "e.de").write_bytes(gzip.compress(b""))
    with pytest.raises(EmptyCorpusError, match=f"empty corpus: {tmp_path / 'e.en'} and {tmp_path / 'e.de'} hold no lines"):
        read_parallel(tmp_path / "e.en", tmp_path / "e.de")


def test_invalid_utf8_gives_file_and_line(tmp_path):
    bad = tmp_path / "bad.de"
    bad.write_bytes("erste Zeile\nzweite Zeile\nGr\xfc\xdfe aus K\xf6ln\n".encode("latin-1"))
    with pytest.raises(CorpusEncodingError, match=f"{bad}, line 3: invalid UTF-8 .*iconv"):
        read_lines(bad)
    gz = tmp_path / "bad.de.gz"
    gz.write_bytes(gzip.compress(bad.read_bytes()))
    with pytest.raises(CorpusEncodingError, match=f"{gz}, line 3: invalid UTF-8"):
        read_lines(gz)


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "cut.en.gz"
    path.write_bytes(gzip.compress(("a sentence\n" * 1000).encode())[:60])
    with pytest.raises(CorpusEncodingError, match=f"{path}: not a valid gzip file"):
        read_lines(path)


def test_data_module_raises_before_training(tmp_path, spm_cache):
    (tmp_path / "t.en").write_text("a\nb\n")
    (tmp_path / "t.de").write_text("x\n")
    data = TranslationDataModule(train_files=[str(tmp_path / "t.en"), str(tmp_path / "t.de")], cache_dir=str(spm_cache))
    with pytest.raises(MisalignedCorpusError, match="has 2 lines but .*t.de has 1 lines"):
        data.vocab_size  # the tokenizer needs the training text: checked at first use


def test_utf16_with_a_byte_order_mark_is_named_with_its_conversion(tmp_path):
    path = tmp_path / "notepad.en"
    path.write_bytes("A dog runs.\nTwo men.\n".encode("utf-16"))  # Windows "Unicode": BOM + UTF-16 LE
    with pytest.raises(CorpusEncodingError, match=f"{path}: UTF-16 text .*iconv -f utf-16 -t utf-8"):
        read_lines(path)


def test_nul_bytes_are_utf16_or_binary_and_refused_with_the_line(tmp_path):
    path = tmp_path / "utf16le.en"  # UTF-16 of ASCII without a BOM is valid UTF-8: one garbled line per \n byte
    path.write_bytes("A dog runs.\nTwo men.\n".encode("utf-16-le"))
    with pytest.raises(CorpusEncodingError, match=f"{path}, line 1: a NUL byte .*UTF-16 text without a byte-order "
                                                  "mark or a binary file.*iconv -f utf-16le -t utf-8"):
        read_lines(path)
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"first line\nsecond\n\x00\x01\x02")
    with pytest.raises(CorpusEncodingError, match=f"{binary}, line 3: a NUL byte"):
        read_lines(binary)


def test_a_folder_given_as_a_file_is_named_as_a_folder(tmp_path):
    with pytest.raises(CorpusNotFoundError, match=f"{tmp_path} is a folder, not a text file"):
        read_lines(tmp_path)


def test_misaligned_by_blank_lines_at_the_end_says_so(tmp_path):
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    src.write_text("a\nb\n")
    tgt.write_text("x\ny\n\n \n")  # an editor's blank lines after the last sentence
    with pytest.raises(MisalignedCorpusError) as raised:
        read_parallel(src, tgt)
    assert (f"{src} has 2 lines but {tgt} has 4 lines. The last 2 line(s) of {tgt} are empty: delete them if they are "
            "only blank lines at its end.") in str(raised.value)
    tgt.write_text("x\ny\nz\n")
    with pytest.raises(MisalignedCorpusError) as raised:
        read_parallel(src, tgt)
    assert "are empty" not in str(raised.value)


def test_a_pipe_is_read_and_a_device_is_named(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe"  # what the shell's `--input <(zcat test.en.gz)` hands over
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("A dog runs.\nTwo men.\n"))
    writer.start()
    try:
        lines = read_lines(fifo)
    finally:
        if writer.is_alive():  # refused without reading: let the writer finish
            fifo.read_bytes()
        writer.join()
    assert lines == ["A dog runs.", "Two men."]
    with pytest.raises(CorpusNotFoundError, match="/dev/zero is not a regular file \\(a device or a socket\\)"):
        read_lines("/dev/zero")  # would never end
