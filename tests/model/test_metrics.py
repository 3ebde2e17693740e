"""sacreBLEU wrappers: identical numbers to sacreBLEU itself, signatures, argument checks."""

import pytest
import sacrebleu

from lightning_slt.model.metrics import corpus_bleu, corpus_chrf, corpus_ter, score_translations

HYPOTHESES = ["The cat sat on the mat.", "A man rides a bicycle down the street.", "Two dogs play."]
REFERENCES = ["The cat is on the mat.", "A man is riding his bike down the road.", "Two dogs are playing."]


def test_bleu_matches_sacrebleu_exactly():
    bleu, signature = corpus_bleu(HYPOTHESES, REFERENCES)
    assert bleu == sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert signature == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"


def test_single_pair_bleu_value_is_pinned():
    bleu, _ = corpus_bleu(["The cat sat on the mat."], ["The cat is on the mat."])
    # 7 tokens each; precisions 6/7, 4/6, 2/5, 1/4, brevity penalty 1.
    assert bleu == pytest.approx(100 * (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25, rel=1e-12)


def test_chrf_and_ter_match_sacrebleu():
    chrf, chrf_sig = corpus_chrf(HYPOTHESES, REFERENCES)
    ter, ter_sig = corpus_ter(HYPOTHESES, REFERENCES)
    assert chrf == sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score
    assert ter == sacrebleu.corpus_ter(HYPOTHESES, [REFERENCES]).score
    assert chrf_sig.startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0")
    assert ter_sig.startswith("nrefs:1|case:lc|tok:tercom")


def test_score_translations_bundles_all_three():
    scores = score_translations(HYPOTHESES, REFERENCES)
    assert scores.bleu == corpus_bleu(HYPOTHESES, REFERENCES)[0]
    assert scores.n_sentences == 3
    assert set(scores.to_dict()["signatures"]) == {"bleu", "chrf", "ter"}
    assert score_translations(REFERENCES, REFERENCES).bleu == pytest.approx(100.0, rel=1e-12)


def test_mismatched_or_empty_input_is_rejected():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        corpus_bleu(HYPOTHESES, REFERENCES[:2])
    with pytest.raises(ValueError, match="hypotheses is empty"):
        score_translations([], [])
