"""Upstream location and sha256 of every corpus file that can be downloaded byte-identically.

Keys are paths relative to the data root (the layout ``resolve_corpus`` reads). Values name the
file in a public GitHub repository at a fixed snapshot commit, so a download today gets the very
bytes the sums were taken from (see the data README: multi30k/dataset ``a3d2e0d2``,
Helsinki-NLP/OPUS-MT-testsets ``ac0f19c0``). Files rebuilt locally (the WMT14 train
concatenation, the filtered newstest2014, IWSLT17 extracted from XML) are absent on purpose:
they have no byte-identical upstream copy, so they are "local-only".
"""

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"

_MULTI30K = "multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw"
_OPUS_TESTSETS = "Helsinki-NLP/OPUS-MT-testsets/ac0f19c0be3cb4e0d9450fcb2d7a9847c4bdd180/testsets"


@dataclass(frozen=True)
class UpstreamFile:
    """Where one local file comes from: ``<base_url>/<url_path>``, and its sha256 as stored."""

    url_path: str
    sha256: str


UPSTREAM: dict[str, UpstreamFile] = {
    # Multi30k Task 1, raw (gzipped upstream too; upstream calls valid "val" and the two test
    # sets "test_2016_flickr" / "test_2017_flickr").
    "multi30k/train.en.gz": UpstreamFile(f"{_MULTI30K}/train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
    "multi30k/train.de.gz": UpstreamFile(f"{_MULTI30K}/train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
    "multi30k/train.fr.gz": UpstreamFile(f"{_MULTI30K}/train.fr.gz", "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c"),
    "multi30k/valid.en.gz": UpstreamFile(f"{_MULTI30K}/val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
    "multi30k/valid.de.gz": UpstreamFile(f"{_MULTI30K}/val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
    "multi30k/valid.fr.gz": UpstreamFile(f"{_MULTI30K}/val.fr.gz", "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9"),
    "multi30k/test.en.gz": UpstreamFile(f"{_MULTI30K}/test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
    "multi30k/test.de.gz": UpstreamFile(f"{_MULTI30K}/test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
    "multi30k/test.fr.gz": UpstreamFile(f"{_MULTI30K}/test_2016_flickr.fr.gz", "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90"),
    "multi30k/test2017.en.gz": UpstreamFile(f"{_MULTI30K}/test_2017_flickr.en.gz", "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074"),
    "multi30k/test2017.de.gz": UpstreamFile(f"{_MULTI30K}/test_2017_flickr.de.gz", "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee"),
    "multi30k/test2017.fr.gz": UpstreamFile(f"{_MULTI30K}/test_2017_flickr.fr.gz", "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496"),
    # WMT news test sets. newstest2013 is multi-way parallel: both English sides are the same
    # file (same sha256), taken from eng-deu.
    "wmt14-ende/valid.en": UpstreamFile(f"{_OPUS_TESTSETS}/eng-deu/newstest2013.eng", "ace268a1d9724ca76f6d8e5c720ffdc08f01bdce45630ed8b269dc7918e1c16e"),
    "wmt14-ende/valid.de": UpstreamFile(f"{_OPUS_TESTSETS}/eng-deu/newstest2013.deu", "d7ea35ab91ff3709e03ad9cb6bf5b4f2cc775cd2d72efd5254c4aec5e69663ca"),
    "wmt14-ende/test.en": UpstreamFile(f"{_OPUS_TESTSETS}/eng-deu/newstest2014.eng", "7294bccf2879a97b3706b95c9595f1459617a8ee7130d5d8581c910e69736971"),
    "wmt14-ende/test.de": UpstreamFile(f"{_OPUS_TESTSETS}/eng-deu/newstest2014.deu", "ae5d110486bc33d7175e9e28c7d0051eb3e5fcd2166dd93371089852c091a20e"),
    "wmt14-enfr/valid.en": UpstreamFile(f"{_OPUS_TESTSETS}/eng-deu/newstest2013.eng", "ace268a1d9724ca76f6d8e5c720ffdc08f01bdce45630ed8b269dc7918e1c16e"),
    "wmt14-enfr/valid.fr": UpstreamFile(f"{_OPUS_TESTSETS}/eng-fra/newstest2013.fra", "909b63be5df3eb8c13e1d5967bf3f0adfdb9f6ed5e638c5bffff563ee2ff7f41"),
    # The en-fr newstest2014 has its own English side (differs from the en-de one).
    "wmt14-enfr/test.en": UpstreamFile(f"{_OPUS_TESTSETS}/eng-fra/newstest2014.eng", "9a12cb6e8efb3509ebede627e4a9c83ee64935509d561ff70f4b7bd5f93f6096"),
    "wmt14-enfr/test.fr": UpstreamFile(f"{_OPUS_TESTSETS}/eng-fra/newstest2014.fra", "2bd07dc204f965bf88e90adb6223a8cb850f9bf9840df6af1f4945195936656e"),
    # Tatoeba Challenge test v2021-08-07 (en-de lives under deu-eng upstream).
    "tatoeba-ende/test.en": UpstreamFile(f"{_OPUS_TESTSETS}/deu-eng/tatoeba-test-v2021-08-07.eng", "5d0e3169914a5e3f4ca7bdec670880f2025385c5a7e29547d9cbd7992105e77f"),
    "tatoeba-ende/test.de": UpstreamFile(f"{_OPUS_TESTSETS}/deu-eng/tatoeba-test-v2021-08-07.deu", "a06d3300c05158e83bb5c1709a0bf5aecc2e28c895e66f03b1c914a7fdd8c8c6"),
    "tatoeba-enfr/test.en": UpstreamFile(f"{_OPUS_TESTSETS}/eng-fra/tatoeba-test-v2021-08-07.eng", "714a848bd6ab4421cafd1b9b09fd26328306fab1bc8006e820fa77a8cbe57636"),
    "tatoeba-enfr/test.fr": UpstreamFile(f"{_OPUS_TESTSETS}/eng-fra/tatoeba-test-v2021-08-07.fra", "095313ff04016e5ddeff7557d1c5590f19724d239e424cab313b2d03ca66d365"),
}
