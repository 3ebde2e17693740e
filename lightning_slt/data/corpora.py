"""Corpus registry, data root, and the downloader for files that exist byte-identically upstream.

A corpus is a folder under the data root holding ``<split>.<lang>`` files (``.gz`` for some).
The data root is ``LIGHTNING_SLT_DATA`` when set, else a user cache that ``download_corpus``
fills, so the package works on offline machines with a shared copy and on laptops with none.
Downloads come from fixed snapshot commits and are checked against sha256 sums kept in code
(``checksums.py``); corpora rebuilt locally are refused with a message saying how to provide them.
"""

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lightning_slt.data.checksums import DEFAULT_BASE_URL, UPSTREAM, UpstreamFile
from lightning_slt.data.errors import (
    ChecksumError,
    CorpusNotFoundError,
    DownloadError,
    LocalOnlyCorpusError,
)

log = logging.getLogger(__name__)

DATA_ENV_VAR = "LIGHTNING_SLT_DATA"


@dataclass(frozen=True)
class Split:
    """One split of a corpus: files ``<stem>.<lang>`` (plus ``.gz`` when ``gzipped``)."""

    stem: str
    gzipped: bool
    about: str  # what the split holds, shown in error messages
    pairs: tuple[str, ...] | None = None  # None: available for every pair of the corpus


@dataclass(frozen=True)
class Corpus:
    """A named corpus: one folder per language pair and a set of splits."""

    name: str
    folders: Mapping[str, str]  # canonical pair "en-de" -> folder under the data root
    splits: Mapping[str, Split] = field(default_factory=dict)

    def splits_for(self, pair: str) -> list[str]:
        """Names of the splits that exist for a canonical pair."""
        return [name for name, split in self.splits.items() if split.pairs is None or pair in split.pairs]


CORPORA: dict[str, Corpus] = {
    "multi30k": Corpus(
        "multi30k",
        {"en-de": "multi30k", "en-fr": "multi30k"},
        {
            "train": Split("train", True, "Multi30k train, 29,000 pairs"),
            "valid": Split("valid", True, "Multi30k val, 1,014 pairs"),
            "test": Split("test", True, "Multi30k test_2016_flickr, 1,000 pairs"),
            "test2017": Split("test2017", True, "Multi30k test_2017_flickr, 1,000 pairs"),
        },
    ),
    "wmt14": Corpus(
        "wmt14",
        {"en-de": "wmt14-ende", "en-fr": "wmt14-enfr"},
        {
            "train": Split("train", True, "newstest2008-2012 concatenated, 13,071 pairs"),
            "valid": Split("valid", False, "newstest2013, 3,000 pairs"),
            "test": Split("test", False, "newstest2014 (full), 3,003 pairs"),
            "test-filtered": Split(
                "test-filtered", False, "official filtered newstest2014, 2,737 pairs", pairs=("en-de",)
            ),
        },
    ),
    "iwslt17": Corpus(
        "iwslt17",
        {"en-de": "iwslt17-ende", "en-fr": "iwslt17-enfr"},
        {
            "valid": Split("valid", False, "IWSLT17 TED tst2016"),
            "test": Split("test", False, "IWSLT17 TED tst2017"),
        },
    ),
    "tatoeba": Corpus(
        "tatoeba",
        {"en-de": "tatoeba-ende", "en-fr": "tatoeba-enfr"},
        {"test": Split("test", False, "Tatoeba Challenge test v2021-08-07")},
    ),
}


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lightning_slt`` (``~/.cache/lightning_slt`` when unset or empty)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightning_slt"


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding the corpora: ``root`` if given, else ``LIGHTNING_SLT_DATA`` if set and
    non-empty, else ``<user cache>/data`` (where ``download_corpus`` writes)."""
    return _root_and_origin(root)[0]


def get_corpus(name: str) -> Corpus:
    """The registry entry for ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in CORPORA:
        raise ValueError(f"corpus must be one of {sorted(CORPORA)}, got {name!r}")
    return CORPORA[name]


def parse_pair(corpus: Corpus, pair: str) -> tuple[str, str, str]:
    """``(canonical pair, src_lang, tgt_lang)`` for ``"src-tgt"``; either direction is accepted."""
    langs = pair.split("-")
    if len(langs) != 2 or not all(langs) or langs[0] == langs[1]:
        raise ValueError(f"pair must look like 'en-de' (source-target), got {pair!r}")
    src, tgt = langs
    for canonical in (f"{src}-{tgt}", f"{tgt}-{src}"):
        if canonical in corpus.folders:
            return canonical, src, tgt
    raise ValueError(
        f"corpus {corpus.name!r} has no pair {pair!r}; known pairs: {sorted(corpus.folders)} "
        "(either direction). Pass your own files with train_files/valid_files/test_files instead."
    )


def check_split(name: str, pair: str, split: str) -> None:
    """Raise ``ValueError`` unless ``split`` exists for ``pair`` of corpus ``name``."""
    corpus = get_corpus(name)
    canonical, _, _ = parse_pair(corpus, pair)
    known = corpus.splits_for(canonical)
    if split not in known:
        raise ValueError(f"split of corpus {name!r} ({canonical}) must be one of {known}, got {split!r}")


def resolve_corpus(name: str, pair: str, split: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """Paths ``(source file, target file)`` of one split, e.g. ``("multi30k", "en-de", "train")``.

    ``pair`` is ``"src-tgt"`` in the direction wanted ("de-en" returns the German file first).
    A ``.gz`` file is also found uncompressed and vice versa, for roots filled by hand.

    Raises:
        ValueError: unknown corpus, pair or split (message lists the known ones).
        LocalOnlyCorpusError: the split is missing and has no byte-identical upstream copy.
        CorpusNotFoundError: the split is missing but ``download_corpus`` can fetch it.
    """
    check_split(name, pair, split)
    corpus = CORPORA[name]
    canonical, src, tgt = parse_pair(corpus, pair)
    root_path, origin = _root_and_origin(root)
    return _find_file(corpus, canonical, split, src, root_path, origin), _find_file(
        corpus, canonical, split, tgt, root_path, origin
    )


def download_corpus(
    name: str, pair: str, root: str | Path | None = None, base_url: str | None = None
) -> Path:
    """Fetch every downloadable split of ``name``/``pair`` into the data root; return its folder.

    Files already present with the right sha256 are kept. Each download goes to a temporary file
    beside its destination and is renamed into place only after its sha256 matched, so an
    interrupted or corrupted download never leaves a file that looks complete. ``base_url``
    replaces ``https://raw.githubusercontent.com`` (a mirror, or ``file://`` in tests).

    Raises:
        ValueError: unknown corpus or pair.
        LocalOnlyCorpusError: nothing of this corpus can be downloaded (e.g. ``iwslt17``).
        DownloadError: a file could not be fetched.
        ChecksumError: a fetched or already present file has a different sha256.
    """
    corpus = get_corpus(name)
    canonical, _, _ = parse_pair(corpus, pair)
    root_path = data_root(root)
    folder = corpus.folders[canonical]
    wanted = [
        relative
        for split in corpus.splits_for(canonical)
        for lang in canonical.split("-")
        if (relative := _relative_path(corpus, canonical, split, lang)) in UPSTREAM
    ]
    if not wanted:
        raise LocalOnlyCorpusError(
            f"corpus {name!r} ({canonical}) is local-only: its files were rebuilt (not copied "
            f"byte-for-byte) from upstream, so they cannot be downloaded. Put {folder}/<split>.<lang> "
            f"under a folder and set {DATA_ENV_VAR} to it, or pass the files by path "
            "(train_files/valid_files/test_files=[src, tgt])."
        )
    for relative in wanted:
        _fetch_verified(UPSTREAM[relative], root_path / relative, base_url or DEFAULT_BASE_URL)
    return root_path / folder


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _root_and_origin(root: str | Path | None) -> tuple[Path, str]:
    """The data root and a phrase saying where it came from, for error messages."""
    if root is not None:
        return Path(root), "passed as data_root"
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env), f"from {DATA_ENV_VAR}"
    return user_cache_dir() / "data", f"the user cache; {DATA_ENV_VAR} is not set"


def _relative_path(corpus: Corpus, canonical: str, split: str, lang: str) -> str:
    spec = corpus.splits[split]
    return f"{corpus.folders[canonical]}/{spec.stem}.{lang}" + (".gz" if spec.gzipped else "")


def _find_file(corpus: Corpus, canonical: str, split: str, lang: str, root: Path, origin: str) -> Path:
    relative = _relative_path(corpus, canonical, split, lang)
    expected = root / relative
    alternative = expected.with_suffix("") if relative.endswith(".gz") else Path(f"{expected}.gz")
    for candidate in (expected, alternative):
        if candidate.is_file():
            return candidate
    about = corpus.splits[split].about
    by_path = "train_files" if split == "train" else "valid_files/test_files"
    if relative not in UPSTREAM:
        raise LocalOnlyCorpusError(
            f"corpus {corpus.name!r} {canonical} split {split!r} ({about}) not found: {expected} does "
            f"not exist (data root {root}, {origin}). This split is local-only: it was rebuilt from "
            "several upstream files and cannot be downloaded byte-identically. Fix: put the files "
            f"{relative.split('/')[-1]} (and the other side) in {corpus.folders[canonical]}/ under a "
            f"folder and set {DATA_ENV_VAR} to it, or pass them by path ({by_path}=[src, tgt])."
        )
    raise CorpusNotFoundError(
        f"corpus {corpus.name!r} {canonical} split {split!r} ({about}) not found: {expected} does "
        f"not exist (data root {root}, {origin}). Fix: set {DATA_ENV_VAR} to a folder holding "
        f"{corpus.folders[canonical]}/, or download it (download_corpus({corpus.name!r}, "
        f"{canonical!r}); in the data module download=True, YAML data.download: true), or pass "
        f"the files by path ({by_path}=[src, tgt])."
    )


def _fetch_verified(upstream: UpstreamFile, destination: Path, base_url: str) -> None:
    """Download one file to ``destination`` atomically, refusing it unless its sha256 matches."""
    if destination.is_file():
        actual = sha256_file(destination)
        if actual != upstream.sha256:
            raise ChecksumError(
                f"{destination} exists but its sha256 is {actual}, expected {upstream.sha256}. It is "
                "not the published file: delete it to download it again, or point "
                f"{DATA_ENV_VAR} at another folder."
            )
        return
    url = f"{base_url.rstrip('/')}/{upstream.url_path}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
                raise DownloadError(
                    f"could not download {url}: {err}. Check the network (or base_url), or set "
                    f"{DATA_ENV_VAR} to a folder that already holds the corpus."
                ) from err
        if digest.hexdigest() != upstream.sha256:
            raise ChecksumError(
                f"download of {url} failed its checksum: sha256 {digest.hexdigest()}, expected "
                f"{upstream.sha256}; nothing was written to {destination}. The download was corrupted "
                "or the upstream file changed: retry, or obtain the corpus another way and set "
                f"{DATA_ENV_VAR} to its folder."
            )
        os.replace(temp_name, destination)
        log.info("downloaded %s -> %s", url, destination)
    finally:
        if os.path.exists(temp_name):
            os.remove(temp_name)
