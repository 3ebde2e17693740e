"""Greedy and beam search over a ``Transformer``, batched over sentences.

Split as fairseq splits it (STYLE.md §5, §16): the model is reached only through ``encode``,
``new_cache``/``decode``/``logits``, ``reorder_cache`` and ``reorder_encoder_out``; the beam
rule is ``beam_step``, a small function testable on hand-made log-probs.

Rules shared by both searches:
- Hypotheses never contain pad or bos; the returned token lists hold neither bos nor eos.
- Sentence i may generate at most ``max_len[i] = int(max_len_a * src_len[i] + max_len_b)``
  tokens before eos (at least 1, at most ``max_positions - 1``), where src_len counts its
  non-padding source tokens; a per-sentence limit keeps results independent of the batch.
- ``use_cache=False`` recomputes the whole prefix every step (the benchmark's baseline) and
  gives the same tokens as the cached path.
- Finished sentences leave the batch, so the remaining steps run on fewer rows.

Beam search follows fairseq: each step ranks the 2K best continuations (K = beam size) of
all live hypotheses; eos continuations among the first K are finished hypotheses scored by
log P / lp(len) with the GNMT length penalty lp(len) = ((5 + len) / 6) ** alpha (Wu et al.
2016, len counts eos), and the first K non-eos continuations live on. A sentence is done
when it has K finished hypotheses, when its best finished score beats the best any live
hypothesis could still reach (its log P / lp(max_len + 1), tensor2tensor's stopping bound),
or at its length limit. With K = 1 a finished hypothesis ends the search at once, so beam
search with beam size 1 returns greedy search's tokens.
"""

import torch
from torch import Tensor

from lightning_slt.model.transformer import Transformer


def gnmt_length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016); length counts eos."""
    length = length.double() if isinstance(length, Tensor) else float(length)
    return ((5.0 + length) / 6.0) ** alpha


def beam_step(lprobs: Tensor, scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rank the 2K best one-token continuations of every sentence's K live hypotheses.

    Args:
        lprobs: (B, K, V) log-probabilities of the next token for each of the K hypotheses of
            each of B sentences; -inf for forbidden tokens.
        scores: (B, K) summed log-probabilities of the hypotheses so far; -inf marks a hypothesis
            slot that is not in use (at the first step only slot 0 is).

    Returns:
        cand_scores (B, 2K) summed log-probabilities of the candidates, best first;
        cand_tokens (B, 2K) the token each candidate appends;
        cand_beams (B, 2K) the hypothesis slot (0..K-1) each candidate extends.
    """
    batch, beam, vocab = lprobs.shape
    if scores.shape != (batch, beam):
        raise ValueError(f"scores must have shape {(batch, beam)}, got {tuple(scores.shape)}")
    # At most 2K winners come from one hypothesis, so each one's 2K best tokens suffice: a
    # (B, K, 2K) short list instead of adding scores to, and ranking, all K*V continuations.
    per_beam = min(2 * beam, vocab)
    top_lprobs, top_tokens = lprobs.topk(per_beam, dim=2)  # (B, K, 2K')
    total = (scores.unsqueeze(2) + top_lprobs).view(batch, beam * per_beam)  # (B, K*2K')
    cand_scores, flat = total.topk(min(2 * beam, beam * per_beam), dim=1)  # (B, 2K)
    cand_beams = torch.div(flat, per_beam, rounding_mode="floor")  # (B, 2K)
    cand_tokens = top_tokens.view(batch, beam * per_beam).gather(1, flat)  # (B, 2K)
    return cand_scores, cand_tokens, cand_beams


def _validate(src: Tensor, max_len_a: float, max_len_b: int) -> None:
    """Argument checks shared by both searches."""
    if src.dim() != 2 or src.size(0) == 0:
        raise ValueError(f"src must be a non-empty (batch, length) LongTensor, got shape {tuple(src.shape)}")
    if max_len_a < 0 or max_len_b < 0:
        raise ValueError(f"max_len_a and max_len_b must be >= 0, got {max_len_a} and {max_len_b}")


def _max_lengths(model: Transformer, src: Tensor, max_len_a: float, max_len_b: int) -> Tensor:
    """(B,) most tokens before eos per sentence: int(a * src_len + b), clamped to [1, P - 1]."""
    src_len = src.ne(model.config.pad_id).sum(dim=1).double()  # (B,)
    limit = (max_len_a * src_len + max_len_b).long()  # int() truncation, as fairseq
    return limit.clamp(1, model.config.max_positions - 1)


def _next_logits(model: Transformer, tokens: Tensor, enc, cache) -> Tensor:
    """Logits (N, V) of the next token after tokens (N, t) with or without the cache."""
    if cache is not None:
        hidden = model.decode(tokens[:, -1:], enc, cache)  # (N, 1, D)
    else:
        hidden = model.decode(tokens, enc)  # (N, t, D), whole prefix recomputed
    return model.logits(hidden[:, -1]).float()  # (N, V)


def greedy_search(model: Transformer, src: Tensor, max_len_a: float = 1.2, max_len_b: int = 10,
                  use_cache: bool = True) -> list[list[int]]:
    """The most probable next token at every step, for each sentence of src (B, S).

    Returns one token list per sentence, without bos/eos/pad (see the module docstring).
    """
    _validate(src, max_len_a, max_len_b)
    config = model.config
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            max_len = _max_lengths(model, src, max_len_a, max_len_b)  # (B,)
            enc = model.encode(src)
            cache = model.new_cache(enc, capacity=int(max_len.max()) + 1) if use_cache else None
            alive = torch.arange(src.size(0), device=src.device)  # (A,) sentence of each live row
            tokens = src.new_full((src.size(0), 1), config.bos_id)  # (A, t + 1)
            results: list[list[int]] = [[] for _ in range(src.size(0))]
            for step in range(int(max_len.max())):
                logits = _next_logits(model, tokens, enc, cache)  # (A, V)
                logits[:, [config.pad_id, config.bos_id]] = float("-inf")
                next_tokens = logits.argmax(dim=1)  # (A,)
                tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)  # (A, t + 2)
                ended = next_tokens.eq(config.eos_id) | (max_len[alive] <= step + 1)  # (A,)
                if not bool(ended.any()):
                    continue
                for row in ended.nonzero().flatten().tolist():
                    hyp = tokens[row, 1:].tolist()
                    results[int(alive[row])] = hyp[:-1] if hyp[-1] == config.eos_id else hyp
                keep = (~ended).nonzero().flatten()  # (A',)
                if keep.numel() == 0:
                    break
                alive, tokens = alive[keep], tokens[keep]
                if cache is not None:
                    cache = model.reorder_cache(cache, keep)
                else:
                    enc = model.reorder_encoder_out(enc, keep)
            return results
    finally:
        model.train(was_training)


def beam_search(model: Transformer, src: Tensor, beam_size: int = 4, length_penalty: float = 0.6,
                max_len_a: float = 1.2, max_len_b: int = 10, use_cache: bool = True) -> list[list[int]]:
    """Best hypothesis of a beam search of width ``beam_size`` for each sentence of src (B, S).

    ``length_penalty`` is GNMT's alpha (0 = rank by summed log-probability). Returns one token
    list per sentence, without bos/eos/pad (see the module docstring for the rules).
    """
    _validate(src, max_len_a, max_len_b)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _beam_search(model, src, beam_size, length_penalty,
                                _max_lengths(model, src, max_len_a, max_len_b), use_cache)
    finally:
        model.train(was_training)


def best_hypotheses(model: Transformer, src: Tensor, beam_size: int, length_penalty: float, max_len_a: float,
                    max_len_b: int) -> list[list[int]]:
    """Token ids (no bos/eos) of the best hypothesis for each row of src (B, S): greedy search
    when ``beam_size`` is 1 (the same tokens as a beam of 1, faster), else beam search."""
    if beam_size == 1:
        return greedy_search(model, src, max_len_a=max_len_a, max_len_b=max_len_b)
    return beam_search(model, src, beam_size=beam_size, length_penalty=length_penalty,
                       max_len_a=max_len_a, max_len_b=max_len_b)


def _only_eos_where(lprobs: Tensor, rows: Tensor, eos_id: int) -> None:
    """Leave eos the one candidate of the rows at their length limit (in place; eos keeps its score)."""
    if bool(rows.any()):
        eos_lprobs = lprobs[rows, eos_id]
        lprobs[rows] = float("-inf")
        lprobs[rows, eos_id] = eos_lprobs


def _beam_search(model: Transformer, src: Tensor, beam: int, alpha: float, max_len: Tensor,
                 use_cache: bool) -> list[list[int]]:
    config = model.config
    batch, device = src.size(0), src.device
    enc = model.encode(src)
    expand = torch.arange(batch, device=device).repeat_interleave(beam)  # (B*K,) sentence of each row
    if use_cache:
        cache, enc = model.reorder_cache(model.new_cache(enc, capacity=int(max_len.max()) + 1), expand), None
    else:
        cache, enc = None, model.reorder_encoder_out(enc, expand)
    alive = torch.arange(batch, device=device)  # (A,) sentence of each live group of K rows
    tokens = src.new_full((batch * beam, 1), config.bos_id)  # (A*K, t + 1)
    scores = torch.full((batch, beam), float("-inf"), device=device)  # (A, K)
    scores[:, 0] = 0.0  # all K rows start identical: let only slot 0 expand at the first step
    best_score = [float("-inf")] * batch
    best_hyp: list[list[int]] = [[] for _ in range(batch)]
    n_finished = [0] * batch
    bound_penalty = gnmt_length_penalty(max_len + 1, alpha)  # (B,) largest lp a hypothesis can get

    for step in range(int(max_len.max()) + 1):
        lprobs = torch.log_softmax(_next_logits(model, tokens, enc, cache), dim=1)  # (A*K, V)
        lprobs[:, [config.pad_id, config.bos_id]] = float("-inf")
        at_limit = max_len[alive] <= step  # (A,) must end now
        _only_eos_where(lprobs, at_limit.repeat_interleave(beam), config.eos_id)
        cand_scores, cand_tokens, cand_beams = beam_step(lprobs.view(-1, beam, lprobs.size(1)), scores)

        # Finish eos candidates among the first K (fairseq); record the best per sentence.
        is_eos = cand_tokens.eq(config.eos_id)  # (A, 2K)
        finish = is_eos[:, :beam] & cand_scores[:, :beam].isfinite()  # (A, K)
        if bool(finish.any()):
            normalized = cand_scores[:, :beam] / gnmt_length_penalty(step + 1, alpha)  # (A, K)
            for a, c in finish.nonzero().tolist():
                sent = int(alive[a])
                n_finished[sent] += 1
                if normalized[a, c] > best_score[sent]:
                    best_score[sent] = float(normalized[a, c])
                    best_hyp[sent] = tokens[a * beam + int(cand_beams[a, c]), 1:].tolist()

        # The first K non-eos candidates live on (eos ranks last, then by candidate rank).
        rank = is_eos.long() * is_eos.size(1) + torch.arange(is_eos.size(1), device=device)  # (A, 2K)
        live = rank.topk(beam, dim=1, largest=False).indices.sort(dim=1).values  # (A, K)
        scores = cand_scores.gather(1, live)  # (A, K)
        group_start = torch.arange(alive.numel(), device=device)[:, None] * beam  # (A, 1)
        source_rows = group_start + cand_beams.gather(1, live)  # (A, K) hypothesis row each one extends
        new_tokens = cand_tokens.gather(1, live)  # (A, K)

        done = _sentences_done(alive, scores, at_limit, n_finished, best_score, bound_penalty, beam)
        keep = (~done).nonzero().flatten()  # (A',)
        if keep.numel() == 0:
            break
        index = source_rows[keep].flatten()  # (A'*K,) hypothesis rows that live on
        tokens = torch.cat([tokens[index], new_tokens[keep].reshape(-1, 1)], dim=1)  # (A'*K, t + 2)
        scores, alive = scores[keep], alive[keep]
        if cache is not None:
            cache = model.reorder_cache(cache, index)
        elif keep.numel() < done.numel():  # rows of one sentence share the encoder output
            enc = model.reorder_encoder_out(enc, index)
    return best_hyp


def _sentences_done(alive: Tensor, scores: Tensor, at_limit: Tensor, n_finished: list[int],
                    best_score: list[float], bound_penalty: Tensor, beam: int) -> Tensor:
    """(A,) bool: sentence has K finished hypotheses, cannot improve, or hit its length limit.

    Live summed log-probs only fall as tokens are added and lp grows with length, so
    scores[:, 0] / lp(max_len + 1) bounds every score a live hypothesis can still finish with.
    """
    sentences = alive.tolist()
    finished = torch.tensor([n_finished[s] for s in sentences], device=scores.device)  # (A,)
    best = torch.tensor([best_score[s] for s in sentences], dtype=torch.float64,
                        device=scores.device)  # (A,)
    reachable = scores[:, 0].double() / bound_penalty[alive]  # (A,)
    return at_limit | finished.ge(beam) | best.gt(reachable)
