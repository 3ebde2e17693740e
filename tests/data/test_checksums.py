"""The upstream registry: one pinned snapshot per source, well-formed sums that are those of the
shared corpora, and no entry for the files rebuilt locally (they have no byte-identical upstream)."""

import re

from lightning_slt.data.checksums import DEFAULT_BASE_URL, UPSTREAM, UpstreamFile
from lightning_slt.data.corpora import sha256_file

MULTI30K = "multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/"
OPUS = "Helsinki-NLP/OPUS-MT-testsets/ac0f19c0be3cb4e0d9450fcb2d7a9847c4bdd180/testsets/"


def test_every_entry_points_into_a_pinned_snapshot_with_a_sha256():
    assert DEFAULT_BASE_URL == "https://raw.githubusercontent.com" and len(UPSTREAM) == 24
    assert all(isinstance(entry, UpstreamFile) and re.fullmatch(r"[0-9a-f]{64}", entry.sha256) for entry in UPSTREAM.values())
    assert sum(path.startswith("multi30k/") for path in UPSTREAM) == 12
    assert all(entry.url_path.startswith(MULTI30K if path.startswith("multi30k/") else OPUS)
               for path, entry in UPSTREAM.items())
    assert UPSTREAM["multi30k/valid.de.gz"].url_path == MULTI30K + "val.de.gz"  # upstream's name for valid


def test_multi_way_newstest2013_english_is_one_file_and_newstest2014_english_is_two():
    assert UPSTREAM["wmt14-ende/valid.en"] == UPSTREAM["wmt14-enfr/valid.en"]
    assert UPSTREAM["wmt14-ende/test.en"].sha256 != UPSTREAM["wmt14-enfr/test.en"].sha256


def test_files_rebuilt_locally_have_no_upstream_entry():
    local_only = ["wmt14-ende/train.en.gz", "wmt14-ende/test-filtered.en", "iwslt17-ende/test.en", "iwslt17-ende/valid.de"]
    assert not set(local_only) & set(UPSTREAM)
    assert not any(path.startswith("iwslt17") for path in UPSTREAM)


def test_the_shared_corpora_are_the_bytes_the_sums_were_taken_from(data_root):
    mismatched = [path for path, entry in UPSTREAM.items() if sha256_file(data_root / path) != entry.sha256]
    assert mismatched == []
