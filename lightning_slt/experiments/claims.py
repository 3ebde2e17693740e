"""The paper's five headline claims, judged on an experiment's results with a rule fixed in code.

The rule (fixed before any run, so no threshold is tuned to a result):

- Every comparison is a difference Δ = BLEU(a) − BLEU(b) of two runs of one experiment (one
  machine: bf16 runs on different CPUs are not bit-identical).
- Its σ combines the two sources of noise: the seed spread of the dense model (sample sd over
  ≥ 3 seeds; each run is one seed's draw, so the difference carries it twice) and the test set's
  sampling, from sacrebleu's paired bootstrap of the two systems' test outputs (the sd of the
  resampled BLEU difference): σ = sqrt(2·σ_seed² + σ_bootstrap²).
- "a ≈ b" means |Δ| ≤ 2σ; "a > b" means Δ > 2σ.
- An experiment run in parts (``ExperimentConfig.parts``) is judged part by part: each
  comparison within the first part that ran both systems. Only where no part ran both is it
  made across two parts, on BLEU relative to each part's dense model, with σ =
  sqrt(4·σ_seed² + σ_bootstrap²) (each relative BLEU carries two seed draws; the bootstrap
  resamples all four test outputs, the dense models' included), and marked so.

A claim (``brix2020.Claim``: the paper's five as data) is a list of expectations, each met,
violated or unclear; the claim **holds** when all are met, **does not hold** when any is
violated, and is **inconclusive** otherwise. Each control is also judged against the round it
runs beside (``methods.Control``); MP trained for an SLT lineage's steps is measured against that
ticket and against MP of one run (no expectation: it separates "method" from "compute").

Where methods were trained under several seeds (the converged protocol: two seeds of the dense
model, MP, SLT and LT), the per-method rule replaces the dense model's spread (``judge_seeds``):

- Every run counts relative to the dense model of its own seed and part: r = BLEU − BLEU(dense),
  so parts on different machines or sittings compare as the rule above compares across parts.
- A method at a sparsity is the mean r̄ of its seeds (one run per seed; from the first part
  configured to run the method); Δ = r̄(a) − r̄(b).
- σ_a is method a's own seed spread: the sample sd of r over seeds, pooled over its sparsities
  (where it has at least ``MIN_METHOD_DOF`` degrees of freedom); a method trained under one seed
  takes the spread pooled over every method that has seeds.
- σ = sqrt(σ_a²/n_a + σ_b²/n_b + σ_bootstrap²), σ_bootstrap from the paired bootstrap of the same
  contrast on the test outputs (each run's and its dense model's, weighted 1/n; a dense output
  that both sides share cancels). "≈", ">" and the verdicts as above.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .brix2020 import CLAIMS, COMPUTE, Claim, Expectation
from .methods import METHODS

from .paths import ExperimentPaths

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 12345  # sacrebleu's default SACREBLEU_SEED
MIN_METHOD_DOF = 2  # a method's own seed spread from two degrees of freedom (two sparsities under two seeds)


@dataclass
class System:
    """One run's test result: its BLEU and (for the bootstrap) its hypotheses, in test order."""

    bleu: float
    hypotheses: list[str] | None = None
    run: str = ""


@dataclass
class Part:
    """The systems of one part of an experiment (one machine, one sitting), with its dense model."""

    name: str
    systems: dict[tuple[str, float], System]
    references: list[str] | None = None
    dense: System | None = None
    methods: list[str] = field(default_factory=list)  # configured to run (not only trained for a control)
    seeds: dict[int, dict[tuple[str, float], System]] = field(default_factory=dict)  # every seed's systems


@dataclass
class Comparison:
    """Δ = a − b at one sparsity, its σ, and how it stands against the expectation.

    ``a_rel``/``b_rel`` are a and b relative to the dense model of their part (the paper's
    likewise, against its dense model); ``across`` marks a comparison between two parts, judged
    on those relative numbers.
    """

    a: str
    b: str
    sparsity: float
    expected: str  # ">", "<", "≈", "≥" (not below: ≈ or better) or "?" (measured, no expectation)
    delta: float
    sigma: float
    outcome: str  # "met", "violated", "unclear", "measured"
    paper_delta: float | None = None
    part: str = ""
    across: bool = False
    a_rel: float | None = None
    b_rel: float | None = None
    paper_a_rel: float | None = None
    paper_b_rel: float | None = None
    seeds: tuple[int, int] = (1, 1)  # runs (seeds) averaged on each side

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
        if outcomes == {"measured"}:
            return "measured"
        if "violated" in outcomes:
            return "does not hold"
        return "holds" if outcomes == {"met"} and not self.missing else "inconclusive"


def seed_spread(dense_bleus: Sequence[float]) -> float:
    """Sample sd of the dense model's test BLEU over seeds; the rule needs at least three."""
    if len(dense_bleus) < 3:
        raise ValueError(f"the verdict rule needs the dense model under at least 3 seeds, got {len(dense_bleus)}; "
                         "train it with seeds: [0, 1, 2] (a dense-only experiment is enough), or train the methods under two "
                         "seeds at two sparsities or more (their own spread then judges)")
    return statistics.stdev(dense_bleus)


def bootstrap_sd(a: Sequence[str], b: Sequence[str], references: Sequence[str],
                 n_samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """sd of BLEU(a) − BLEU(b) over paired bootstrap resamples of the test set (sacrebleu's
    sufficient statistics, resampled as its own ``paired-bs`` test does)."""
    return contrast_bootstrap_sd([(1.0, a), (-1.0, b)], references, n_samples, seed)


def contrast_bootstrap_sd(terms: Sequence[tuple[float, Sequence[str]]], references: Sequence[str],
                          n_samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """sd of Σ wᵢ·BLEU(systemᵢ) over paired bootstrap resamples of the test set: every system is
    scored on the same resampled sentences. Two terms (+a, −b) are the paired bootstrap of a − b;
    four, (a − dense_a) − (b − dense_b), compare two parts, whose dense models' test outputs
    carry test-set noise of their own."""
    from sacrebleu.metrics import BLEU

    if any(len(hypotheses) != len(references) for _, hypotheses in terms):
        raise ValueError(f"paired bootstrap needs one hypothesis per reference: "
                         f"{', '.join(str(len(h)) for _, h in terms)} and {len(references)} lines")
    metric = BLEU()
    index = np.random.default_rng(seed).choice(len(references), size=(n_samples, len(references)), replace=True)
    total = np.zeros(n_samples)
    for weight, hypotheses in terms:
        stats = _sentence_statistics(metric, hypotheses, references)
        total += weight * np.array([_bleu_of(metric, sample.sum(0)) for sample in stats[index]])
    return float(np.std(total, ddof=1))


def _sentence_statistics(metric: Any, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per sentence [hypothesis length, reference length, n-gram matches..., n-gram totals...],
    from sacreBLEU's public score of each sentence (the statistics its own paired bootstrap sums)."""
    rows = []
    for hypothesis, reference in zip(hypotheses, references):
        score = metric.corpus_score([hypothesis], [[reference]])
        rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    return np.array(rows, dtype="float32")


def _bleu_of(metric: Any, stats: np.ndarray) -> float:
    """Corpus BLEU from summed sentence statistics (``BLEU.compute_bleu``, sacreBLEU's public formula)."""
    order = metric.max_ngram_order
    return metric.compute_bleu(correct=stats[2:2 + order], total=stats[2 + order:], sys_len=int(stats[0]),
                               ref_len=int(stats[1]), smooth_method=metric.smooth_method,
                               smooth_value=metric.smooth_value, effective_order=metric.effective_order,
                               max_ngram_order=order).score


def compare(a: str, b: str, sparsity: float, expected: str, systems: dict[tuple[str, float], System],
            references: Sequence[str] | None, sigma_seed: float, paper: dict | None = None) -> Comparison:
    """One expectation between methods ``a`` and ``b`` at ``sparsity``, within one set of runs."""
    part = Part("", systems, list(references) if references is not None else None)
    return _compare(a, b, sparsity, expected, part, part, sigma_seed, paper)


def _compare(a: str, b: str, sparsity: float, expected: str, pa: Part, pb: Part, sigma_seed: float,
             paper: dict | None) -> Comparison:
    """Within one part (``pa is pb``): Δ = a − b, σ = sqrt(2σ_seed² + σ_bs²). Across two parts:
    Δ of the BLEUs relative to each part's dense model, σ = sqrt(4σ_seed² + σ_bs²), as each
    relative BLEU carries two seed draws (the run's and its dense model's), and σ_bs is the
    bootstrap of all four test outputs, the dense models' included."""
    x, y = pa.systems[(a, sparsity)], pb.systems[(b, sparsity)]
    references = pa.references if pa.references is not None else pb.references
    across = pa is not pb
    terms = [(1.0, x), (-1.0, y)] + ([(-1.0, pa.dense), (1.0, pb.dense)] if across else [])
    sigma_bs = (contrast_bootstrap_sd([(w, system.hypotheses) for w, system in terms], references)
                if references is not None and all(s is not None and s.hypotheses is not None for _, s in terms)
                else 0.0)
    a_rel = x.bleu - pa.dense.bleu if pa.dense is not None else None
    b_rel = y.bleu - pb.dense.bleu if pb.dense is not None else None
    delta = a_rel - b_rel if across else x.bleu - y.bleu
    sigma = math.sqrt((4 if across else 2) * sigma_seed ** 2 + sigma_bs ** 2)
    return Comparison(a, b, sparsity, expected, delta, sigma, _outcome(delta, sigma, expected),
                      _paper_delta(paper, a, b, sparsity), pa.name if not across else f"{pa.name} ↔ {pb.name}",
                      across, a_rel, b_rel, _paper_rel(paper, a, sparsity), _paper_rel(paper, b, sparsity))


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
    if expected == "?":
        return "measured"
    raise ValueError(f"expected must be one of >, <, ≈, ≥, ?; got {expected!r}")


def _paper_delta(paper: dict | None, a: str, b: str, sparsity: float) -> float | None:
    x, y = _paper_bleu(paper, a, sparsity), _paper_bleu(paper, b, sparsity)
    return None if x is None or y is None else x - y


def _paper_bleu(paper: dict | None, method: str, sparsity: float) -> float | None:
    try:
        return paper[method]["bleu"][f"{sparsity:.2f}"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def _paper_rel(paper: dict | None, method: str, sparsity: float) -> float | None:
    """The paper's BLEU of ``method`` relative to its dense model (the 0 % row)."""
    value, dense = _paper_bleu(paper, method, sparsity), _paper_bleu(paper, method, 0.0)
    return None if value is None or dense is None else value - dense


def control_claims() -> list[Claim]:
    """Each control is below the round it runs beside (the methods registry says which)."""
    return [Claim(name, f"{name.replace('_', ' ')} control is below the {m.control.beside.upper()} round of its target",
                  (Expectation(m.control.beside, name, ">"),), from_paper=False)
            for name, m in METHODS.items() if m.control is not None]


def judge_parts(parts: list[Part], sigma_seed: float, paper: dict | None = None,
                claims: Sequence[Claim] | None = None) -> list[ClaimVerdict]:
    """Judge ``claims`` (default: the paper's five, the controls, the compute row) over an
    experiment's parts: each comparison within the first part that ran both systems; where no
    part ran both, across the two parts that did, relative to each part's dense model (marked so)."""

    def comparison(e: Expectation, s: float) -> Comparison | None:
        pa, pb = _where_run(parts, e.a, s), _where_run(parts, e.b, s)
        both = [part for part in pa if part in pb]
        if both:
            return _compare(e.a, e.b, s, e.expected, both[0], both[0], sigma_seed, paper)
        if pa and pb and pa[0].dense is not None and pb[0].dense is not None:
            return _compare(e.a, e.b, s, e.expected, pa[0], pb[0], sigma_seed, paper)
        return None

    systems = {key for part in parts for key in part.systems}
    return _judge(claims, systems, comparison)


def _judge(claims: Sequence[Claim] | None, systems: set[tuple[str, float]],
           comparison: Callable[[Expectation, float], Comparison | None]) -> list[ClaimVerdict]:
    """Each claim's expectations compared wherever both methods were run (``systems``: the
    (method, sparsity) pairs there are; controls run at fewer sparsities than the methods), by the
    rule's ``comparison`` (None: not comparable there). An expectation with no sparsity compared
    is missing, and its claim inconclusive."""
    methods = {m for m, _ in systems}
    sparsities = sorted({s for _, s in systems if s > 0})
    verdicts = []
    for claim in [*CLAIMS, *control_claims(), COMPUTE] if claims is None else claims:
        verdict = ClaimVerdict(claim.number, claim.text)
        for e in claim.expectations:
            absent = [m for m in (e.a, e.b) if m not in methods]
            if absent:
                verdict.missing += [m for m in absent if m not in verdict.missing]
                continue
            found = [c for s in filter(e.covers, sparsities) if (c := comparison(e, s)) is not None]
            verdict.comparisons += found
            if not found:
                verdict.missing.append(f"{e.a} and {e.b}{' at ' + e.at if e.at else ''}")
        if verdict.comparisons or claim.from_paper:
            verdicts.append(verdict)
    return verdicts


def _where_run(parts: list[Part], method: str, s: float) -> list[Part]:
    """The parts with ``method`` at ``s``: those configured to run it first (a part that trains SLT
    rounds only for a control comes after the part that runs SLT)."""
    return sorted((part for part in parts if (method, s) in part.systems), key=lambda part: method not in part.methods)


@dataclass(frozen=True)
class Replicate:
    """One seed's run of a method at a sparsity, with the dense model of its seed and part."""

    part: str
    seed: int
    system: System
    dense: System

    @property
    def relative(self) -> float:
        return self.system.bleu - self.dense.bleu


def replicates_of(parts: list[Part]) -> dict[tuple[str, float], list[Replicate]]:
    """Each (method, sparsity)'s runs, one per seed, from the parts configured to run the method,
    the first that has a seed first (else from any part: rounds trained only for a control); dense
    models excluded."""
    out: dict[tuple[str, float], list[Replicate]] = {}
    keys = {key for part in parts for systems in part.seeds.values() for key in systems if key[1] > 0}
    for method, s in sorted(keys):
        configured = [part for part in parts if method in part.methods]
        for part in configured or parts:
            for seed, systems in sorted(part.seeds.items()):
                dense = next((system for (_, sparsity), system in systems.items() if sparsity == 0), None)
                taken = {r.seed for r in out.get((method, s), [])}
                if (method, s) in systems and dense is not None and seed not in taken:
                    out.setdefault((method, s), []).append(Replicate(part.name, seed, systems[(method, s)], dense))
    return out


@dataclass(frozen=True)
class SeedSpread:
    """σ_seed per method (pooled sample sd of relative BLEU over seeds), and over all methods."""

    by_method: dict[str, float]
    dof: dict[str, int]
    pooled: float
    pooled_dof: int

    def of(self, method: str) -> float:
        return self.by_method.get(method, self.pooled)


def method_spreads(replicates: dict[tuple[str, float], list[Replicate]]) -> SeedSpread:
    """Each method's seed spread of BLEU relative to its dense model, pooled over its sparsities
    (sum of squared deviations over sum of degrees of freedom), where it has ``MIN_METHOD_DOF``;
    and the same pooled over every method, for those trained under one seed."""
    squares: dict[str, float] = {}
    dof: dict[str, int] = {}
    for (method, _), runs in replicates.items():
        if len(runs) > 1:
            values = [r.relative for r in runs]
            mean = statistics.fmean(values)
            squares[method] = squares.get(method, 0.0) + sum((v - mean) ** 2 for v in values)
            dof[method] = dof.get(method, 0) + len(values) - 1
    total_dof = sum(dof.values())
    if total_dof < MIN_METHOD_DOF:
        raise ValueError(f"the per-method seed rule needs at least {MIN_METHOD_DOF} degrees of freedom of seed spread "
                         f"(e.g. a method at two sparsities under two seeds), got {total_dof}")
    by_method = {m: math.sqrt(squares[m] / dof[m]) for m in dof if dof[m] >= MIN_METHOD_DOF}
    return SeedSpread(by_method, dof, math.sqrt(sum(squares.values()) / total_dof), total_dof)


def uses_method_seeds(parts: list[Part]) -> bool:
    """Whether the per-method rule judges: methods other than the dense model were trained under
    several seeds, giving at least ``MIN_METHOD_DOF`` degrees of freedom of seed spread (else the
    dense model's spread over three seeds, the rule above)."""
    return sum(len(runs) - 1 for runs in replicates_of(parts).values()) >= MIN_METHOD_DOF


def judge_seeds(parts: list[Part], paper: dict | None = None,
                claims: Sequence[Claim] | None = None) -> tuple[list[ClaimVerdict], SeedSpread]:
    """``judge_parts`` by the per-method rule (module docstring): every seed's runs, relative to
    their own dense models, σ from each method's own seed spread."""
    replicates = replicates_of(parts)
    spread = method_spreads(replicates)
    references = next((part.references for part in parts if part.references is not None), None)

    def comparison(e: Expectation, s: float) -> Comparison | None:
        if (e.a, s) not in replicates or (e.b, s) not in replicates:
            return None
        return _compare_seeds(e.a, e.b, s, e.expected, replicates, spread, references, paper)

    return _judge(claims, set(replicates), comparison), spread


def _compare_seeds(a: str, b: str, s: float, expected: str, replicates: dict[tuple[str, float], list[Replicate]],
                   spread: SeedSpread, references: Sequence[str] | None, paper: dict | None) -> Comparison:
    runs_a, runs_b = replicates[(a, s)], replicates[(b, s)]
    weights: dict[int, tuple[float, System]] = {}  # by identity: a dense output both sides share cancels
    for runs, sign in ((runs_a, 1.0), (runs_b, -1.0)):
        for run in runs:
            for system, weight in ((run.system, sign / len(runs)), (run.dense, -sign / len(runs))):
                previous = weights.get(id(system), (0.0, system))[0]
                weights[id(system)] = (previous + weight, system)
    terms = [(weight, system.hypotheses) for weight, system in weights.values() if abs(weight) > 1e-12]
    sigma_bs = (contrast_bootstrap_sd(terms, references)
                if references is not None and all(h is not None for _, h in terms) else 0.0)
    a_rel = statistics.fmean(r.relative for r in runs_a)
    b_rel = statistics.fmean(r.relative for r in runs_b)
    delta = a_rel - b_rel
    sigma = math.sqrt(spread.of(a) ** 2 / len(runs_a) + spread.of(b) ** 2 / len(runs_b) + sigma_bs ** 2)
    parts_a, parts_b = sorted({r.part for r in runs_a}), sorted({r.part for r in runs_b})
    across = parts_a != parts_b or len(parts_a) > 1
    where = ", ".join(parts_a) if not across else f"{', '.join(parts_a)} ↔ {', '.join(parts_b)}"
    return Comparison(a, b, s, expected, delta, sigma, _outcome(delta, sigma, expected), _paper_delta(paper, a, b, s),
                      where, across, a_rel, b_rel, _paper_rel(paper, a, s), _paper_rel(paper, b, s),
                      (len(runs_a), len(runs_b)))


def _signed(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def claims_markdown(verdicts: list[ClaimVerdict], sigma_seed: float, dense_bleu: float | None = None,
                    parts: list[tuple[str, float, str]] | None = None, spread: SeedSpread | None = None) -> str:
    """The claims table: per comparison the paper's and our numbers relative to each one's dense
    model, Δ ± σ, outcome; then one verdict per claim.

    Args:
        parts: (part, its dense test BLEU, how it agrees with the first part's) for an
            experiment run in parts.
        spread: the methods' own seed spreads, where the per-method rule judged (``judge_seeds``).
    """
    if spread is None:
        lines = [f"Verdict rule: σ = sqrt(2·σ_seed² + σ_bootstrap²) with σ_seed = {sigma_seed:.2f} BLEU (dense model "
                 "over seeds) and σ_bootstrap from sacrebleu's paired bootstrap of the compared test outputs; "
                 "'≈' is |Δ| ≤ 2σ." + (f" Dense test BLEU {dense_bleu:.2f}." if dense_bleu is not None else "")]
    else:
        own = ", ".join(f"{m} {v:.2f} ({spread.dof[m]} df)" for m, v in sorted(spread.by_method.items()))
        lines = ["Verdict rule (per-method seeds): every run counts relative to the dense model of its own seed and "
                 "part; a method at a sparsity is the mean over its n seeds; Δ = r̄(a) − r̄(b), σ = sqrt(σ_a²/n_a + "
                 "σ_b²/n_b + σ_bootstrap²) with each method's own seed spread σ_seed (sd of relative BLEU over seeds, "
                 f"pooled over its sparsities): {own or 'none with enough seeds'}; a method under one seed takes "
                 f"{spread.pooled:.2f} (all methods pooled, {spread.pooled_dof} df); σ_bootstrap from sacrebleu's "
                 "paired bootstrap of the same contrast on the test outputs; '≈' is |Δ| ≤ 2σ. The part column "
                 "gives the seeds averaged on each side (n)."]
    if parts:
        lines += ["Comparisons are made within one part; one marked 'a ↔ b' spans two parts and is judged on BLEU "
                  "relative to each part's dense model, σ = sqrt(4·σ_seed² + σ_bootstrap²), the bootstrap over "
                  "the four test outputs (both dense models' included).", "",
                  "| part | dense test BLEU | against the first part's dense model |", "|---|---|---|"]
        lines += [f"| {name} | {bleu:.2f} | {agreement} |" for name, bleu, agreement in parts]
    lines += ["", "| claim | comparison | sparsity | part | paper a, b vs dense | paper Δ | ours a, b vs dense "
              "| ours Δ ± σ | observed | expected | outcome |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for verdict in verdicts:
        for c in verdict.comparisons:
            paper_rel = "" if c.paper_a_rel is None else f"{_signed(c.paper_a_rel)}, {_signed(c.paper_b_rel)}"
            ours_rel = "" if c.a_rel is None else f"{_signed(c.a_rel, 2)}, {_signed(c.b_rel, 2)}"
            where = c.part if spread is None else f"{c.part} (n {c.seeds[0]}, {c.seeds[1]})"
            lines.append(f"| {verdict.number} | {c.a} − {c.b} | {c.sparsity:.0%} | {where} | {paper_rel} "
                         f"| {_signed(c.paper_delta)} | {ours_rel} | {c.delta:+.2f} ± {c.sigma:.2f} "
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
        run = ExperimentPaths.of(output_dir).run(seed, row["run"])
        hypotheses = _lines(run.hypotheses, run.metrics)
        out[(row["method"], row["sparsity"])] = System(row["test_bleu"], hypotheses, row["run"])
    return out


def _lines(path: Path, metrics: Path) -> list[str] | None:
    """A test output's lines (None where there is none); one that is not UTF-8 is named."""
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}), as the test stage writes "
                         f"it; {RETEST.format(metrics=metrics)}") from None


RETEST = ("delete {metrics} and run the experiment again to test that run anew (its checkpoints are kept; nothing is "
          "trained again)")


def _load_part(folder: Path, seed: int) -> tuple[Part, dict[int, float]]:
    """The part's systems of ``seed`` with their test outputs, and its dense test BLEU per seed."""
    from .report import collect, configured_methods

    _, rows = collect(folder)
    dense_rows = {r["seed"]: r for r in rows if r["kind"] == "dense" and r["test_bleu"] is not None}
    systems = systems_of(rows, folder, seed)
    references = None
    if seed in dense_rows:
        dense_run = ExperimentPaths(folder).run(seed, dense_rows[seed]["run"])
        path = dense_run.references
        references = _lines(path, dense_run.metrics)
    dense_metrics = ExperimentPaths(folder).run(seed, "dense").metrics
    if seed not in dense_rows and not dense_metrics.is_file():
        raise ValueError(f"{folder}: the dense run of seed {seed} has not finished (no {dense_metrics}); the claims "
                         f"compare seed {seed}'s runs on the test references beside it and relative to it: run the "
                         "experiment again to finish it, or give another --seed")
    without = [run.run for run in systems.values() if run.hypotheses is None]
    if references is None or without:
        raise ValueError(f"{folder}: the paired bootstrap needs every run's test/hypotheses_test.txt and the "
                         f"references_test.txt beside the dense run's (missing: {without[:5] or 'references'}); "
                         "re-run the experiment's test stage with this version")
    for system in systems.values():  # one hypothesis per reference, or the bootstrap pairs the wrong lines
        if len(system.hypotheses) != len(references):
            run = ExperimentPaths(folder).run(seed, system.run)
            raise ValueError(
                f"{run.hypotheses} has {len(system.hypotheses)} lines, but the references {path} has "
                f"{len(references)}: one of them is cut short or from another test set; "
                + RETEST.format(metrics=run.metrics if len(system.hypotheses) < len(references) else dense_run.metrics))
    dense = next((system for (_, s), system in systems.items() if s == 0), None)
    part = Part(folder.name, systems, references, dense, configured_methods(folder))
    return part, {k: r["test_bleu"] for k, r in dense_rows.items()}


def _check_seed(folder: Path, seed: int) -> None:
    """``seed`` must be one the experiment (part) trained every run under."""
    from .report import read_manifest

    config = read_manifest(folder)["config"]
    if "seeds" in config and seed not in config["seeds"]:
        dense_only = seed in config.get("dense_seeds", [])
        raise ValueError(f"--seed {seed}: {folder} has no seed {seed}"
                         + (" but as a dense-only seed (dense_seeds), whose pruned runs are not trained" if dense_only
                            else "") + f"; its seeds are {config['seeds']}: give one of them")


def _spread(dense: dict[int, float], folder: Path, source: str) -> float:
    """``seed_spread`` of the dense runs of ``folder``, naming the folder and the dense runs it
    planned that have not finished (they, not the plan, are why there are fewer than three)."""
    from .report import read_manifest, unfinished_runs

    try:
        return seed_spread(list(dense.values()))
    except ValueError as error:
        waiting = [seed for seed, run in unfinished_runs(folder, read_manifest(folder)) if run == "dense"]
        if not waiting:
            raise ValueError(f"{source}: {error}") from None
        paths = ", ".join(str(ExperimentPaths(folder).run(seed, "dense").metrics) for seed in waiting)
        raise ValueError(f"{source}: the dense run of seed{'s' if len(waiting) > 1 else ''} "
                         f"{', '.join(map(str, waiting))} has not finished (no {paths}), and the verdict rule needs "
                         f"the dense model under at least 3 seeds ({len(dense)} finished); run the experiment again "
                         "to finish it, or give --dense-from a folder with three finished dense seeds") from None


def _unfinished(folder: Path, seed: int) -> str | None:
    """Why a part cannot be judged yet ("7 of 11 runs"), or None once every run of its plan has
    finished: a part still training would give a verdict on the sparsities it reached so far."""
    from .report import planned_metrics, read_manifest

    paths = ExperimentPaths(folder)
    planned = planned_metrics(folder, read_manifest(folder))
    if planned is None:  # a manifest from before plans were recorded: its dense run decides
        planned = [paths.run(seed, "dense").metrics]
    done = sum(path.is_file() for path in planned)
    return None if done == len(planned) else f"{folder.name} ({done} of {len(planned)} runs)"


def write_claims(output_dir: str | Path, dense_from: str | Path | None = None, seed: int | None = None,
                 paper: str | None = "wmt14_ende") -> tuple[Path, list[ClaimVerdict]]:
    """Judge the claims on one seed of an experiment folder (or of its parts) and write
    ``claims.md`` there.

    Args:
        dense_from: the experiment folder whose dense runs give the seed spread (≥ 3 seeds);
            default: the dense runs of ``output_dir`` (in parts: of the part with the most seeds).
            Given, the dense-spread rule judges even where methods have seeds of their own.
        seed: the seed whose runs are compared under the dense-spread rule (default 0); the
            per-method rule (methods trained under several seeds) uses every seed.
        paper: the paper's table set beside ours ("wmt14_ende", "wmt14_enfr" or None).

    Raises:
        ValueError: a seed the experiment does not have, fewer than three dense seeds (naming
            the dense runs that have not finished), test outputs missing or cut short.
    """
    from lightning_slt.atomic import write_text

    from .report import paper_results, refuse_folder_at

    if paper is not None and paper not in paper_results():
        raise ValueError(f"paper {paper!r} is not one of the paper's tables shipped ({', '.join(paper_results())})")
    output_dir = Path(output_dir)
    refuse_folder_at(ExperimentPaths(output_dir).claims)
    folders, pending = _judged_folders(output_dir, seed or 0)
    reference_table = paper_results().get(paper, {}).get("methods") if paper else None
    seeded = [_load_every_seed(folder) for folder in folders]
    if dense_from is None and uses_method_seeds([part for part, _ in seeded]):  # the methods' own seeds
        if seed is not None and not any(seed in part.seeds for part, _ in seeded):
            _check_seed(folders[0], seed)  # names the seeds there are
        problems = [problem for _, found in seeded for problem in found]
        if problems:
            raise ValueError(problems[0])
        parts = [part for part, _ in seeded]
        verdicts, spread = judge_seeds(parts, reference_table)
        sigma_seed = spread.pooled
    else:
        parts, verdicts, sigma_seed = _judge_one_seed(folders, seed or 0, dense_from, reference_table)
        spread = None
    agreement = None
    if len(parts) > 1:
        agreement = [(part.name, part.dense.bleu,
                      _agreement(parts[0] if spread is None else _same_seed(parts, part), part, sigma_seed))
                     for part in parts if part.dense is not None]
    path = ExperimentPaths(output_dir).claims
    first = parts[0].dense.bleu if parts[0].dense is not None else None
    against = f"The paper's numbers: its {paper} table.\n\n" if reference_table else ""
    title = f"seed {seed or 0}" if spread is None else "every seed"
    protocol = _protocol(folders, [part for part, _ in seeded])
    write_text(path, f"# Claims of Brix et al. (2020) on {output_dir.name}, {title}\n\n" + protocol + pending
               + against + claims_markdown(verdicts, sigma_seed, first if len(parts) == 1 else None, agreement, spread))
    return path, verdicts


def _judged_folders(output_dir: Path, seed: int) -> tuple[list[Path], str]:
    """The folders judged (the experiment's, or its finished parts) and claims.md's lines on what is left out.

    In parts, a part still training is left out, and said so; one folder still training is judged
    on the runs it finished, and says which it lacks; parts not run yet are named (a claim they
    speak to says what it misses, and the reader sees why here).
    """
    from .report import part_folders, planned_parts, read_manifest, unfinished_runs

    folders = part_folders(output_dir)
    not_run = [name for name in planned_parts(output_dir) if name not in {f.name for f in folders}]
    pending = ""
    if len(folders) > 1:
        progress = {f.name: _unfinished(f, seed) for f in folders}
        unfinished = [why for why in progress.values() if why is not None]
        folders = [f for f in folders if progress[f.name] is None]
        if not folders:
            raise ValueError(f"{output_dir}: no part has finished every run of its plan yet ({', '.join(unfinished)})")
        if unfinished:
            pending = f"Parts not finished yet, left out: {', '.join(unfinished)}.\n\n"
    else:
        unfinished = [f"seed {s}: {run}" for s, run in unfinished_runs(folders[0], read_manifest(folders[0]))]
        if unfinished:
            pending = f"Runs not finished yet, left out: {'; '.join(unfinished)}.\n\n"
    if not_run:
        pending += f"Parts not run yet: {', '.join(not_run)}.\n\n"
    return folders, pending


def _judge_one_seed(folders: list[Path], seed: int, dense_from: str | Path | None,
                    paper: dict | None) -> tuple[list[Part], list[ClaimVerdict], float]:
    """The dense-spread rule: one seed's runs, σ_seed from the dense model's seeds (this folder's
    part with the most, or ``dense_from``)."""
    from .report import collect

    for folder in folders:
        _check_seed(folder, seed)
    loaded = [_load_part(folder, seed) for folder in folders]
    parts = [part for part, _ in loaded]
    if dense_from is not None:
        try:
            _, dense_rows = collect(dense_from)
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"--dense-from: {error}") from None
        dense = {r["seed"]: r["test_bleu"] for r in dense_rows if r["kind"] == "dense" and r["test_bleu"] is not None}
        sigma_seed = _spread(dense, Path(dense_from), f"--dense-from {dense_from}")
    else:  # the seeds of one part (the one with most): parts on other machines or sittings would inflate it
        index = max(range(len(loaded)), key=lambda i: len(loaded[i][1]))
        sigma_seed = _spread(loaded[index][1], folders[index], str(folders[index]))
    return parts, judge_parts(parts, sigma_seed, paper), sigma_seed


def _load_every_seed(folder: Path) -> tuple[Part, list[str]]:
    """The part's systems of every seed whose dense run finished (the first seed's as ``systems``),
    and what keeps the paired bootstrap from using them (a missing or cut test output)."""
    from .report import collect, configured_methods

    _, rows = collect(folder)
    paths = ExperimentPaths(folder)
    seeds: dict[int, dict[tuple[str, float], System]] = {}
    problems: list[str] = []
    references = None
    for seed in sorted({row["seed"] for row in rows}):
        systems = systems_of(rows, folder, seed)
        if not any(s == 0 for _, s in systems):
            continue  # its dense run has not finished: nothing of this seed is relative to anything yet
        dense_run = paths.run(seed, "dense")
        seed_references = _lines(dense_run.references, dense_run.metrics)
        references = references if references is not None else seed_references
        for system in systems.values():
            run = paths.run(seed, system.run)
            if system.hypotheses is None or seed_references is None:
                problems.append(f"{folder}: the paired bootstrap needs every run's test/hypotheses_test.txt and the "
                                f"references_test.txt beside the dense run's (missing: {run.hypotheses if system.hypotheses is None else dense_run.references}); "
                                "re-run the experiment's test stage with this version")
            elif len(system.hypotheses) != len(seed_references):
                short = len(system.hypotheses) < len(seed_references)
                problems.append(f"{run.hypotheses} has {len(system.hypotheses)} lines, but the references "
                                f"{dense_run.references} has {len(seed_references)}: one of them is cut short or from "
                                f"another test set; {RETEST.format(metrics=run.metrics if short else dense_run.metrics)}")
        seeds[seed] = systems
    for seed in sorted({row["seed"] for row in rows} - set(seeds)):  # runs of a seed whose dense run is missing
        problems.append(f"{folder}: the dense run of seed {seed} has not finished (no {paths.run(seed, 'dense').metrics}); "
                        "every run counts relative to the dense model of its own seed: run the experiment again to "
                        "finish it")
    first = seeds[min(seeds)] if seeds else {}
    dense = next((system for (_, s), system in first.items() if s == 0), None)
    return Part(folder.name, first, references, dense, configured_methods(folder), seeds), problems


def _same_seed(parts: list[Part], part: Part) -> Part:
    """The first part whose first seed is ``part``'s (their dense models are compared: parts of
    other seeds differ by the seed draw)."""
    seed = min(part.seeds) if part.seeds else None
    return next((other for other in parts if (min(other.seeds) if other.seeds else None) == seed), parts[0])


def _protocol(folders: list[Path], parts: list[Part]) -> str:
    """The training protocol the claims were judged under: T, the dense model's seeds and each
    method's (those of ``parts``, every seed loaded)."""
    from .report import read_manifest

    steps = sorted({str(read_manifest(folder).get("schedule", {}).get("max_steps", "?")) for folder in folders})
    seeds: dict[str, set[int]] = {}
    for part in parts:
        for seed, systems in part.seeds.items():
            for method, sparsity in systems:  # the dense run sits at 0 % in every column
                seeds.setdefault(method if sparsity > 0 else "dense", set()).add(seed)
    seeds = {name: seeds[name] for name in sorted(seeds, key=lambda name: name != "dense")}  # dense first
    listed = "; ".join(f"{method} {', '.join(map(str, sorted(s)))}" for method, s in seeds.items())
    return f"Protocol: T = {' / '.join(steps)} steps per run; seeds: {listed}.\n\n"


def _agreement(first: Part, part: Part, sigma_seed: float) -> str:
    """Whether a part's dense model agrees with the first part's, by the verdict rule."""
    if part is first:
        return "(the reference)"
    systems = {("this", 0.0): part.dense, ("first", 0.0): first.dense}
    c = compare("this", "first", 0.0, "≈", systems, first.references, sigma_seed)
    return f"Δ {c.delta:+.2f} ± {c.sigma:.2f}: {'agrees' if c.outcome == 'met' else 'does not agree'}"
