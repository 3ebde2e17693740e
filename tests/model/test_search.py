"""Greedy and beam search: the step rule on hand-made numbers, exactness against brute force,
cache equivalence, batch invariance, and a tiny model that learns 8 sentences by heart."""

import itertools

import pytest
import torch

from lightning_slt.model.search import beam_search, beam_step, gnmt_length_penalty, greedy_search
from lightning_slt.model.transformer import Transformer, TransformerConfig

PAD, BOS, EOS = 0, 1, 2
NEG = float("-inf")


def random_model(vocab_size: int = 40, seed: int = 0, d_model: int = 32) -> Transformer:
    """A random model with every matrix scaled by 4.

    At plain init a tied-embedding Transformer repeats one token until the length limit; the
    sharper weights give varied tokens, early eos and beams that disagree with greedy search,
    so the equivalence tests below compare something.
    """
    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size=vocab_size, d_model=d_model, n_heads=4, encoder_layers=2,
                               decoder_layers=2, d_ff=2 * d_model)
    model = Transformer(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.mul_(4.0)
    return model


def sources(lengths: list[int], vocab_size: int = 40, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    src = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        src[row, :length] = torch.randint(3, vocab_size, (length,), generator=generator)
    return src


# ---------------------------------------------------------------- the step rule


def test_beam_step_ranks_continuations_of_all_hypotheses():
    scores = torch.tensor([[-1.0, -2.0]])  # (B=1, K=2)
    lprobs = torch.tensor([[[NEG, NEG, -0.5, -1.5],  # hypothesis 0: eos, word 3
                            [NEG, NEG, -0.25, -3.0]]])  # hypothesis 1
    cand_scores, cand_tokens, cand_beams = beam_step(lprobs, scores)
    assert cand_scores.tolist() == [[-1.5, -2.25, -2.5, -5.0]]
    assert cand_tokens.tolist() == [[2, 2, 3, 3]]
    assert cand_beams.tolist() == [[0, 1, 0, 1]]


def test_beam_step_first_step_expands_slot_zero_only():
    scores = torch.tensor([[0.0, NEG], [0.0, NEG]])  # two sentences, all slots identical at start
    lprobs = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])).unsqueeze(1).expand(2, 2, 4)
    cand_scores, cand_tokens, cand_beams = beam_step(lprobs, scores)
    assert cand_tokens.tolist() == [[3, 2, 1, 0], [0, 1, 2, 3]]
    assert cand_beams.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]
    torch.testing.assert_close(cand_scores[0], torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1])))


def test_beam_step_takes_several_candidates_from_one_hypothesis():
    scores = torch.tensor([[-0.5, -9.0]])
    lprobs = torch.tensor([[[-1.0, -2.0, -3.0, -4.0, -5.0], [-0.5, -0.5, -0.5, -0.5, -0.5]]])
    cand_scores, cand_tokens, cand_beams = beam_step(lprobs, scores)
    assert cand_scores.tolist() == [[-1.5, -2.5, -3.5, -4.5]]  # all four from hypothesis 0
    assert cand_tokens.tolist() == [[0, 1, 2, 3]] and cand_beams.tolist() == [[0, 0, 0, 0]]


def test_beam_step_rejects_mismatched_scores():
    with pytest.raises(ValueError, match=r"scores must have shape \(1, 2\), got \(1, 3\)"):
        beam_step(torch.zeros(1, 2, 5), torch.zeros(1, 3))


def test_gnmt_length_penalty():
    assert gnmt_length_penalty(1, 0.6) == 1.0
    assert gnmt_length_penalty(7, 0.6) == pytest.approx(2.0 ** 0.6)
    assert gnmt_length_penalty(torch.tensor([1, 7]), 1.0).tolist() == [1.0, 2.0]
    assert gnmt_length_penalty(12, 0.0) == 1.0


# ---------------------------------------------------------------- exactness and equivalences


def brute_force_best(model: Transformer, src: torch.Tensor, max_len: int, alpha: float) -> list[int]:
    """Score every hypothesis over the word tokens up to max_len (plus eos) and return the best."""
    words = range(3, model.config.vocab_size)
    enc = model.encode(src)
    best, best_hyp = NEG, None
    for length in range(max_len + 1):
        for hyp in itertools.product(words, repeat=length):
            tgt_in = torch.tensor([[BOS, *hyp]])
            lprobs = model.logits(model.decode(tgt_in, enc)).log_softmax(-1)[0]  # (L + 1, V)
            total = sum(lprobs[i, tok].item() for i, tok in enumerate([*hyp, EOS]))
            score = total / gnmt_length_penalty(length + 1, alpha)
            if score > best:
                best, best_hyp = score, list(hyp)
    return best_hyp


@pytest.mark.parametrize(("alpha", "optimum"), [(0.0, []), (0.6, [3]), (2.0, [5, 3, 5])])
def test_wide_beam_finds_the_brute_force_optimum(alpha, optimum):
    """Words {3, 4, 5}, at most 3 of them: 40 hypotheses. A beam of 40 holds every prefix and
    every eos candidate, so the search is exhaustive and must agree with brute force; a beam
    of 2 misses the optimum (it finds [5, 5, 3] for every alpha), so the case is not trivial."""
    model = random_model(vocab_size=6, seed=9, d_model=16)
    src = sources([4], vocab_size=6)
    with torch.inference_mode():
        assert brute_force_best(model, src, max_len=3, alpha=alpha) == optimum
    search = dict(length_penalty=alpha, max_len_a=0.0, max_len_b=3)
    assert beam_search(model, src, beam_size=40, **search) == [optimum]
    assert beam_search(model, src, beam_size=2, **search) == [[5, 5, 3]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_and_uncached_searches_give_identical_tokens(seed):
    model = random_model(seed=seed)
    src = sources([7, 3, 9, 5, 1, 6], seed=4)
    for search, kwargs in ((greedy_search, {}), (beam_search, {"beam_size": 4}), (beam_search, {"beam_size": 3})):
        cached = search(model, src, use_cache=True, **kwargs)
        assert cached == search(model, src, use_cache=False, **kwargs)
        assert sum(map(len, cached)) > 20  # not trivially empty


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_size_one_is_greedy(seed, alpha):
    model = random_model(seed=seed)
    src = sources([7, 3, 9, 5, 1, 6], seed=4)
    greedy = greedy_search(model, src)
    assert beam_search(model, src, beam_size=1, length_penalty=alpha) == greedy
    assert beam_search(model, src, beam_size=4, length_penalty=alpha) != greedy  # beams do search


def test_each_sentence_gets_the_same_output_alone_or_in_a_batch():
    model = random_model(seed=1)
    src = sources([7, 3, 9, 5], seed=4)
    lengths = src.ne(PAD).sum(1).tolist()
    batched = beam_search(model, src, beam_size=4)
    alone = [beam_search(model, src[i:i + 1, :n], beam_size=4)[0] for i, n in enumerate(lengths)]
    assert batched == alone
    assert greedy_search(model, src) == [greedy_search(model, src[i:i + 1, :n])[0] for i, n in enumerate(lengths)]


def test_outputs_respect_length_limits_and_hold_only_words():
    model = random_model(seed=5)
    src = sources([7, 3, 9])
    for hyps in (greedy_search(model, src, max_len_a=0.5, max_len_b=2),
                 beam_search(model, src, max_len_a=0.5, max_len_b=2)):
        for hyp, src_len in zip(hyps, [7, 3, 9]):
            assert len(hyp) <= int(0.5 * src_len + 2)
            assert all(3 <= token < 40 for token in hyp)
    assert all(len(h) <= 1 for h in greedy_search(model, src, max_len_a=0.0, max_len_b=0))  # at least 1 allowed


def test_search_restores_training_mode_and_rejects_bad_arguments():
    model = random_model().train()
    src = sources([4, 2])
    greedy_search(model, src)
    beam_search(model, src)
    assert model.training
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        beam_search(model, src, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty must be >= 0, got -1"):
        beam_search(model, src, length_penalty=-1)
    with pytest.raises(ValueError, match=r"src must be a non-empty \(batch, length\) LongTensor, got shape \(4,\)"):
        greedy_search(model, src[0])
    with pytest.raises(ValueError, match="max_len_a and max_len_b must be >= 0"):
        greedy_search(model, src, max_len_b=-1)


# ---------------------------------------------------------------- a model that learned its data


SOURCES = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14, 5, 9, 6], [7, 7, 15], [16, 17, 8, 10, 5], [12, 18], [19, 4, 3, 11]]


def target_of(source: list[int]) -> list[int]:
    """A made-up 'translation': reversed, each word shifted, plus a length-dependent extra word."""
    return [3 + (token + 5) % 17 for token in reversed(source)] + ([4] if len(source) % 2 else [])


def right_padded(rows: list[list[int]]) -> torch.Tensor:
    batch = torch.full((len(rows), max(map(len, rows))), PAD)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = torch.tensor(row)
    return batch


@pytest.fixture(scope="module")
def memorised_model() -> Transformer:
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=20, d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2,
                               d_ff=128, dropout=0.0)
    model = Transformer(config)
    src = right_padded([s + [EOS] for s in SOURCES])
    tgt = right_padded([[BOS] + target_of(s) + [EOS] for s in SOURCES])
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    keep = tgt_out.ne(PAD)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model.logits(model(src, tgt_in)[keep]), tgt_out[keep])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01
    return model.eval()


@pytest.mark.parametrize("use_cache", [True, False])
def test_memorised_sentences_are_translated_back_exactly(memorised_model, use_cache):
    src = right_padded([s + [EOS] for s in SOURCES])
    expected = [target_of(s) for s in SOURCES]
    assert greedy_search(memorised_model, src, use_cache=use_cache) == expected
    assert beam_search(memorised_model, src, beam_size=4, use_cache=use_cache) == expected
    assert beam_search(memorised_model, src, beam_size=1, use_cache=use_cache) == expected
