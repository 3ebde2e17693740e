"""The paper's five headline claims, judged on an experiment's results with a rule fixed in code.

The rule (fixed before any run, so no threshold is tuned to a result):

- Every comparison is a difference Δ = BLEU(a) − BLEU(b) of two runs of one experiment (one
  machine: bf16 runs on different CPUs are not bit-identical).
- Its σ combines the two sources of noise: the seed spread of the dense model (sample sd over
  ≥ 3 seeds; each run is one seed's draw, so the difference carries it twice) and the test set's
  sampling, from sacrebleu's paired bootstrap of the two systems' test outputs (the sd of the
  resampled BLEU difference): σ = sqrt(2·σ_seed² + σ_bootstrap²).
- "a ≈ b" means |Δ| ≤ 2σ; "a > b" means Δ > 2σ.

A claim is a list of expectations, each met, violated or unclear; the claim **holds** when all
are met, **does not hold** when any is violated, and is **inconclusive** otherwise. Claims
(paper.md §4): 1. SLT ≈ MP up to 85 % and MP ahead at ≥ 90 %; 2. LT below MP at every sparsity;
3. SLT-MP best at high sparsity (≥ 80 %); 4. signs matter more than values (CLT ≈ SLT, random
signs below CLT); 5. the MP-60 % mask followed by SLT above plain SLT at ≥ 85 %. Each control is
also judged against the SLT (CLT) round of its target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 12345  # sacrebleu's default SACREBLEU_SEED


@dataclass
class System:
    """One run's test result: its BLEU and (for the bootstrap) its hypotheses, in test order."""

    bleu: float
    hypotheses: list[str] | None = None
    run: str = ""


@dataclass
class Comparison:
    """Δ = a − b at one sparsity, its σ, and how it stands against the expectation."""

    a: str
    b: str
    sparsity: float
    expected: str  # ">", "<", "≈" or "≥" (not below: ≈ or better)
    delta: float
    sigma: float
    outcome: str  # "met", "violated", "unclear"
    paper_delta: float | None = None

    @property
    def observed(self) -> str:
        if abs(self.delta) <= 2 * self.sigma:
            return "≈"
        return ">" if self.delta > 0 else "<"


@dataclass
class ClaimVerdict:
    number: int | str
    claim: str
    comparisons: list[Comparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.comparisons:
            return "inconclusive"
        outcomes = {c.outcome for c in self.comparisons}
        if "violated" in outcomes:
            return "does not hold"
        return "holds" if outcomes == {"met"} and not self.missing else "inconclusive"


def seed_spread(dense_bleus: Sequence[float]) -> float:
    """Sample sd of the dense model's test BLEU over seeds; the rule needs at least three."""
    if len(dense_bleus) < 3:
        raise ValueError(f"the verdict rule needs the dense model under at least 3 seeds, got {len(dense_bleus)}; "
                         "train it with seeds: [0, 1, 2] (a dense-only experiment is enough)")
    return statistics.stdev(dense_bleus)


def bootstrap_sd(a: Sequence[str], b: Sequence[str], references: Sequence[str],
                 n_samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """sd of BLEU(a) − BLEU(b) over paired bootstrap resamples of the test set (sacrebleu's
    sufficient statistics, resampled as its own ``paired-bs`` test does)."""
    from sacrebleu.metrics import BLEU

    if not (len(a) == len(b) == len(references)):
        raise ValueError(f"paired bootstrap needs one hypothesis per reference: {len(a)}, {len(b)} and "
                         f"{len(references)} lines")
    metric = BLEU()
    stats_a = np.array(metric._extract_corpus_statistics(list(a), [list(references)]), dtype="float32")
    stats_b = np.array(metric._extract_corpus_statistics(list(b), [list(references)]), dtype="float32")
    index = np.random.default_rng(seed).choice(len(references), size=(n_samples, len(references)), replace=True)
    diffs = [metric._compute_score_from_stats(sa.sum(0)).score - metric._compute_score_from_stats(sb.sum(0)).score
             for sa, sb in zip(stats_a[index], stats_b[index])]
    return float(np.std(diffs, ddof=1))


def compare(a: str, b: str, sparsity: float, expected: str, systems: dict[tuple[str, float], System],
            references: Sequence[str] | None, sigma_seed: float, paper: dict | None = None) -> Comparison:
    """One expectation between methods ``a`` and ``b`` at ``sparsity``."""
    x, y = systems[(a, sparsity)], systems[(b, sparsity)]
    sigma_bs = (bootstrap_sd(x.hypotheses, y.hypotheses, references)
                if references is not None and x.hypotheses is not None and y.hypotheses is not None else 0.0)
    sigma = math.sqrt(2 * sigma_seed ** 2 + sigma_bs ** 2)
    delta = x.bleu - y.bleu
    outcome = _outcome(delta, sigma, expected)
    return Comparison(a, b, sparsity, expected, delta, sigma, outcome, _paper_delta(paper, a, b, sparsity))


def _outcome(delta: float, sigma: float, expected: str) -> str:
    above, below = delta > 2 * sigma, delta < -2 * sigma
    if expected == ">":
        return "met" if above else "violated" if below else "unclear"
    if expected == "<":
        return "met" if below else "violated" if above else "unclear"
    if expected == "≥":
        return "violated" if below else "met"
    if expected == "≈":
        return "met" if not (above or below) else "violated"
    raise ValueError(f"expected must be one of >, <, ≈, ≥; got {expected!r}")


def _paper_delta(paper: dict | None, a: str, b: str, sparsity: float) -> float | None:
    if not paper:
        return None
    key = f"{sparsity:.2f}"
    try:
        return paper[a]["bleu"][key] - paper[b]["bleu"][key]
    except (KeyError, TypeError):
        return None


def judge_claims(systems: dict[tuple[str, float], System], sigma_seed: float,
                 references: Sequence[str] | None = None, paper: dict | None = None) -> list[ClaimVerdict]:
    """Every claim (and every control) that the systems at hand can speak to.

    Args:
        systems: (method, sparsity) -> System; methods as in the experiment (mp, lt, slt, clt,
            slt_mp, mp_slt, random_mask, random_reinit, random_sign).
        sigma_seed: the dense model's seed spread (``seed_spread``).
        references: the test references, for the paired bootstrap (None: seed spread only).
        paper: the paper's per-method BLEU (``paper_results()["wmt14_ende"]["methods"]``).
    """
    sparsities = sorted({s for _, s in systems if s > 0})

    methods = {m for m, _ in systems}

    def expect(verdict: ClaimVerdict, a: str, b: str, expected: str, where, at: str = "") -> None:
        """Compare wherever both were run (controls run at fewer sparsities than the methods); an
        expectation with no sparsity where both were run is missing, and the claim inconclusive."""
        absent = [m for m in (a, b) if m not in methods]
        if absent:
            verdict.missing += [m for m in absent if m not in verdict.missing]
            return
        found = [s for s in sparsities if where(s) and (a, s) in systems and (b, s) in systems]
        for s in found:
            verdict.comparisons.append(compare(a, b, s, expected, systems, references, sigma_seed, paper))
        if not found:
            verdict.missing.append(f"{a} and {b}{' at ' + at if at else ''}")

    claims = []
    one = ClaimVerdict(1, "SLT ≈ MP up to 85 % sparsity, and MP is clearly better at ≥ 90 %")
    expect(one, "slt", "mp", "≥", lambda s: s <= 0.85, "≤ 85 %")
    expect(one, "mp", "slt", ">", lambda s: s >= 0.9, "≥ 90 %")
    two = ClaimVerdict(2, "LT (reset to θ0) is below MP at every sparsity")
    expect(two, "lt", "mp", "<", lambda s: True)
    three = ClaimVerdict(3, "SLT-MP gives the best BLEU at high sparsity (≥ 80 %): not below any method, above MP")
    for other in ("lt", "slt", "clt", "mp_slt"):
        expect(three, "slt_mp", other, "≥", lambda s: s >= 0.8, "≥ 80 %")
    expect(three, "slt_mp", "mp", ">", lambda s: s >= 0.8, "≥ 80 %")
    four = ClaimVerdict(4, "Signs matter more than values: CLT ≈ SLT, and random signs are below CLT")
    expect(four, "clt", "slt", "≥", lambda s: True)
    expect(four, "clt", "random_sign", ">", lambda s: True)
    five = ClaimVerdict(5, "The MP-60 % mask followed by SLT is above plain SLT at ≥ 85 %")
    expect(five, "mp_slt", "slt", ">", lambda s: s >= 0.85, "≥ 85 %")
    claims += [one, two, three, four, five]
    for control, base in (("random_mask", "slt"), ("random_reinit", "slt")):
        verdict = ClaimVerdict(control, f"{control.replace('_', ' ')} control is below the {base.upper()} round of its target")
        expect(verdict, base, control, ">", lambda s: True)
        if verdict.comparisons:
            claims.append(verdict)
    return [c for c in claims if c.comparisons]


def claims_markdown(verdicts: list[ClaimVerdict], sigma_seed: float, dense_bleu: float | None = None) -> str:
    """The claims table: claim, paper's Δ, ours with σ per comparison, verdict."""
    lines = [f"Verdict rule: σ = sqrt(2·σ_seed² + σ_bootstrap²) with σ_seed = {sigma_seed:.2f} BLEU (dense model "
             "over seeds) and σ_bootstrap from sacrebleu's paired bootstrap of the two test outputs; "
             "'≈' is |Δ| ≤ 2σ." + (f" Dense test BLEU {dense_bleu:.2f}." if dense_bleu is not None else ""), "",
             "| claim | comparison | sparsity | paper Δ | ours Δ ± σ | observed | expected | outcome |",
             "|---|---|---|---|---|---|---|---|"]
    for verdict in verdicts:
        for c in verdict.comparisons:
            paper = "" if c.paper_delta is None else f"{c.paper_delta:+.1f}"
            lines.append(f"| {verdict.number} | {c.a} − {c.b} | {c.sparsity:.0%} | {paper} | {c.delta:+.2f} ± {c.sigma:.2f} "
                         f"| {c.observed} | {c.expected} | {c.outcome} |")
    lines += ["", "| claim | verdict | missing |", "|---|---|---|"]
    for verdict in verdicts:
        lines.append(f"| {verdict.number}. {verdict.claim} | **{verdict.verdict}** | {', '.join(verdict.missing)} |")
    return "\n".join(lines) + "\n"


def systems_of(rows: list[dict], output_dir: str | Path, seed: int = 0) -> dict[tuple[str, float], System]:
    """(method, sparsity) -> System of one seed's report rows, with each run's test hypotheses."""
    out = {}
    for row in rows:
        if row["seed"] != seed or row["test_bleu"] is None:
            continue
        path = Path(output_dir) / f"seed{seed}" / row["run"] / "test" / "hypotheses_test.txt"
        hypotheses = path.read_text(encoding="utf-8").splitlines() if path.is_file() else None
        out[(row["method"], row["sparsity"])] = System(row["test_bleu"], hypotheses, row["run"])
    return out


def write_claims(output_dir: str | Path, dense_from: str | Path | None = None, seed: int = 0,
                 paper: str = "wmt14_ende") -> tuple[Path, list[ClaimVerdict]]:
    """Judge the claims on one seed of an experiment folder and write ``claims.md`` there.

    Args:
        dense_from: the experiment folder whose dense runs give the seed spread (≥ 3 seeds);
            default ``output_dir`` itself.
        seed: the seed whose runs are compared (comparisons stay within one set of runs).

    Raises:
        ValueError: fewer than three dense seeds, or test outputs missing where a run finished.
    """
    from lightning_slt.atomic import write_text

    from .report import collect, paper_results

    output_dir = Path(output_dir)
    _, rows = collect(output_dir)
    _, dense_rows = collect(dense_from) if dense_from is not None else (None, rows)
    dense = {r["seed"]: r["test_bleu"] for r in dense_rows if r["kind"] == "dense" and r["test_bleu"] is not None}
    sigma_seed = seed_spread(list(dense.values()))
    systems = systems_of(rows, output_dir, seed)
    dense_run = next((r for r in rows if r["kind"] == "dense" and r["seed"] == seed), None)
    references = None
    if dense_run is not None:
        path = output_dir / f"seed{seed}" / dense_run["run"] / "test" / "references_test.txt"
        references = path.read_text(encoding="utf-8").splitlines() if path.is_file() else None
    without = [run.run for run in systems.values() if run.hypotheses is None]
    if references is None or without:
        raise ValueError(f"{output_dir}: the paired bootstrap needs every run's test/hypotheses_test.txt and the "
                         f"references_test.txt beside the dense run's (missing: {without[:5] or 'references'}); "
                         "re-run the experiment's test stage with this version")
    reference_table = paper_results().get(paper, {}).get("methods")
    verdicts = judge_claims(systems, sigma_seed, references, reference_table)
    path = output_dir / "claims.md"
    dense_bleu = dense.get(seed)
    write_text(path, f"# Claims of Brix et al. (2020) on {output_dir.name}, seed {seed}\n\n"
               + claims_markdown(verdicts, sigma_seed, dense_bleu))
    return path, verdicts
