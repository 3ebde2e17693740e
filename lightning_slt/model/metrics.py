"""Corpus-level BLEU, chrF and TER through sacreBLEU, with their signatures.

The paper reports case-sensitive SacreBLEU (and TER); scores are only comparable across
papers when computed on detokenized text with a known signature, so every score here comes
with sacreBLEU's signature string (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:…``).
Defaults are sacreBLEU's own: BLEU 13a, chrF2 (character 6-grams), TER (tercom, lower-cased).
"""

from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF, TER


@dataclass(frozen=True)
class TranslationScores:
    """Corpus scores in sacreBLEU's units (0-100) and the signature of each metric."""

    bleu: float
    chrf: float
    ter: float
    n_sentences: int
    signatures: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def _check_pairs(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} and {len(references)}"
        )
    if not hypotheses:
        raise ValueError("hypotheses is empty: corpus scores need at least one sentence")


def corpus_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacreBLEU's corpus BLEU (13a tokenisation, case-sensitive) and its signature."""
    _check_pairs(hypotheses, references)
    metric = BLEU()
    return metric.corpus_score(hypotheses, [references]).score, str(metric.get_signature())


def corpus_chrf(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacreBLEU's corpus chrF2 and its signature."""
    _check_pairs(hypotheses, references)
    metric = CHRF()
    return metric.corpus_score(hypotheses, [references]).score, str(metric.get_signature())


def corpus_ter(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacreBLEU's corpus TER (lower is better) and its signature."""
    _check_pairs(hypotheses, references)
    metric = TER()
    return metric.corpus_score(hypotheses, [references]).score, str(metric.get_signature())


def score_translations(hypotheses: list[str], references: list[str]) -> TranslationScores:
    """BLEU, chrF and TER of detokenized ``hypotheses`` against one reference each."""
    bleu, bleu_sig = corpus_bleu(hypotheses, references)
    chrf, chrf_sig = corpus_chrf(hypotheses, references)
    ter, ter_sig = corpus_ter(hypotheses, references)
    return TranslationScores(
        bleu=bleu,
        chrf=chrf,
        ter=ter,
        n_sentences=len(hypotheses),
        signatures={"bleu": bleu_sig, "chrf": chrf_sig, "ter": ter_sig},
    )
