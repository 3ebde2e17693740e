"""Corpus registry, data root resolution and the sha256-checked downloader (file:// upstream)."""

import shutil
from pathlib import Path

import pytest

from lightning_slt.data import (
    ChecksumError,
    CorpusNotFoundError,
    DownloadError,
    LocalOnlyCorpusError,
    data_root,
    download_corpus,
    read_parallel,
    resolve_corpus,
)
from lightning_slt.data.checksums import UPSTREAM
from lightning_slt.data.corpora import sha256_file


def test_resolves_every_registered_split_in_the_real_data_root(data_root):
    cases = {
        ("multi30k", "en-de", "train"): ("multi30k/train.en.gz", "multi30k/train.de.gz", 29000),
        ("multi30k", "en-fr", "valid"): ("multi30k/valid.en.gz", "multi30k/valid.fr.gz", 1014),
        ("multi30k", "de-en", "test"): ("multi30k/test.de.gz", "multi30k/test.en.gz", 1000),
        ("multi30k", "en-de", "test2017"): ("multi30k/test2017.en.gz", "multi30k/test2017.de.gz", 1000),
        ("wmt14", "en-de", "train"): ("wmt14-ende/train.en.gz", "wmt14-ende/train.de.gz", 13071),
        ("wmt14", "en-fr", "valid"): ("wmt14-enfr/valid.en", "wmt14-enfr/valid.fr", 3000),
        ("wmt14", "en-de", "test"): ("wmt14-ende/test.en", "wmt14-ende/test.de", 3003),
        ("wmt14", "en-de", "test-filtered"): ("wmt14-ende/test-filtered.en", "wmt14-ende/test-filtered.de", 2737),
        ("iwslt17", "en-de", "valid"): ("iwslt17-ende/valid.en", "iwslt17-ende/valid.de", 1133),
        ("iwslt17", "fr-en", "test"): ("iwslt17-enfr/test.fr", "iwslt17-enfr/test.en", 1455),
        ("tatoeba", "en-de", "test"): ("tatoeba-ende/test.en", "tatoeba-ende/test.de", 17565),
        ("tatoeba", "en-fr", "test"): ("tatoeba-enfr/test.en", "tatoeba-enfr/test.fr", 12681),
    }
    for (name, pair, split), (src, tgt, lines) in cases.items():
        src_path, tgt_path = resolve_corpus(name, pair, split, root=data_root)
        assert (src_path, tgt_path) == (data_root / src, data_root / tgt)
        src_lines, tgt_lines = read_parallel(src_path, tgt_path)
        assert len(src_lines) == len(tgt_lines) == lines
    src_lines, tgt_lines = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root))
    assert src_lines[0] == "Two young, White males are outside near many bushes."
    assert tgt_lines[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."


def test_unknown_names_list_the_known_ones(data_root):
    with pytest.raises(ValueError, match=r"corpus must be one of \['iwslt17', 'multi30k', 'tatoeba', 'wmt14'\], got 'multi30"):
        resolve_corpus("multi30", "en-de", "train", root=data_root)
    with pytest.raises(ValueError, match=r"has no pair 'en-es'; known pairs: \['en-de', 'en-fr'\]"):
        resolve_corpus("multi30k", "en-es", "train", root=data_root)
    with pytest.raises(ValueError, match=r"must be one of \['train', 'valid', 'test'\], got 'test-filtered'"):
        resolve_corpus("wmt14", "en-fr", "test-filtered", root=data_root)
    with pytest.raises(ValueError, match=r"pair must look like 'en-de'"):
        resolve_corpus("multi30k", "ende", "train", root=data_root)


def test_data_root_order_env_then_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_SLT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.setenv("LIGHTNING_SLT_DATA", "")  # empty counts as unset
    assert data_root() == tmp_path / "xdg" / "lightning_slt" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "lightning_slt" / "data"


def test_missing_root_says_where_it_looked_and_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("LIGHTNING_SLT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(CorpusNotFoundError) as raised:
        resolve_corpus("multi30k", "en-de", "train")
    message = str(raised.value)
    expected = tmp_path / "lightning_slt" / "data" / "multi30k" / "train.en.gz"
    assert f"{expected} does not exist" in message
    assert "LIGHTNING_SLT_DATA is not set" in message
    assert "download=True" in message and "train_files=[src, tgt]" in message
    assert isinstance(raised.value, FileNotFoundError)


def test_local_only_splits_cannot_be_downloaded(tmp_path):
    with pytest.raises(LocalOnlyCorpusError, match="local-only") as raised:
        resolve_corpus("wmt14", "en-de", "train", root=tmp_path)
    assert "train_files=[src, tgt]" in str(raised.value)
    with pytest.raises(LocalOnlyCorpusError, match="test_files=\\[src, tgt\\]"):
        resolve_corpus("wmt14", "en-de", "test-filtered", root=tmp_path)
    with pytest.raises(LocalOnlyCorpusError, match="corpus 'iwslt17' \\(en-de\\) is local-only"):
        download_corpus("iwslt17", "en-de", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _fake_upstream(data_root: Path, upstream_dir: Path, prefix: str) -> None:
    """Copy the real files whose local path starts with ``prefix`` to their upstream URL paths."""
    for relative, upstream in UPSTREAM.items():
        if relative.startswith(prefix):
            target = upstream_dir / upstream.url_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_root / relative, target)


def test_download_from_file_url_verifies_and_resolves(data_root, tmp_path):
    upstream_dir, root = tmp_path / "upstream", tmp_path / "root"
    _fake_upstream(data_root, upstream_dir, "multi30k/")
    folder = download_corpus("multi30k", "de-en", root=root, base_url=upstream_dir.as_uri())
    assert folder == root / "multi30k"
    names = sorted(path.name for path in folder.iterdir())
    splits = ("train", "valid", "test", "test2017")
    assert names == sorted(f"{split}.{lang}.gz" for split in splits for lang in ("en", "de"))
    for name in names:
        assert (folder / name).read_bytes() == (data_root / "multi30k" / name).read_bytes()
    src, tgt = resolve_corpus("multi30k", "en-de", "valid", root=root)
    assert len(read_parallel(src, tgt)[0]) == 1014
    # A second call keeps the verified files (no re-download: the upstream is gone now).
    shutil.rmtree(upstream_dir)
    assert download_corpus("multi30k", "en-de", root=root, base_url=upstream_dir.as_uri()) == folder


def test_download_fetches_only_byte_identical_splits(data_root, tmp_path):
    upstream_dir, root = tmp_path / "upstream", tmp_path / "root"
    _fake_upstream(data_root, upstream_dir, "wmt14-ende/")
    download_corpus("wmt14", "en-de", root=root, base_url=upstream_dir.as_uri())
    names = sorted(path.name for path in (root / "wmt14-ende").iterdir())
    assert names == ["test.de", "test.en", "valid.de", "valid.en"]
    expected = "ae5d110486bc33d7175e9e28c7d0051eb3e5fcd2166dd93371089852c091a20e"
    assert sha256_file(root / "wmt14-ende/test.de") == expected
    with pytest.raises(LocalOnlyCorpusError):
        resolve_corpus("wmt14", "en-de", "train", root=root)


def test_corrupted_download_is_refused_and_leaves_nothing(data_root, tmp_path):
    upstream_dir, root = tmp_path / "upstream", tmp_path / "root"
    _fake_upstream(data_root, upstream_dir, "tatoeba-enfr/")
    corrupted = upstream_dir / UPSTREAM["tatoeba-enfr/test.fr"].url_path
    data = bytearray(corrupted.read_bytes())
    data[100] ^= 1  # one flipped bit
    corrupted.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="failed its checksum") as raised:
        download_corpus("tatoeba", "en-fr", root=root, base_url=upstream_dir.as_uri())
    assert "095313ff04016e5ddeff7557d1c5590f19724d239e424cab313b2d03ca66d365" in str(raised.value)
    assert not (root / "tatoeba-enfr" / "test.fr").exists()
    leftovers = [path.name for path in (root / "tatoeba-enfr").iterdir()]
    assert leftovers == ["test.en"]  # verified before the bad one; no .part file remains


def test_existing_file_with_wrong_sum_is_not_overwritten(data_root, tmp_path):
    upstream_dir, root = tmp_path / "upstream", tmp_path / "root"
    _fake_upstream(data_root, upstream_dir, "tatoeba-ende/")
    (root / "tatoeba-ende").mkdir(parents=True)
    (root / "tatoeba-ende" / "test.en").write_text("my own file\n")
    with pytest.raises(ChecksumError, match="exists but its sha256 is .* delete it"):
        download_corpus("tatoeba", "en-de", root=root, base_url=upstream_dir.as_uri())
    assert (root / "tatoeba-ende" / "test.en").read_text() == "my own file\n"


def test_unreachable_upstream_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="could not download file://"):
        download_corpus("tatoeba", "en-de", root=tmp_path / "root", base_url=(tmp_path / "nowhere").as_uri())
    assert [path.name for path in (tmp_path / "root" / "tatoeba-ende").iterdir()] == []
