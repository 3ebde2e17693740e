"""The claims verdicts on synthetic result tables whose verdicts are known. Budget: < 10 s."""

from __future__ import annotations

import math

import pytest

from lightning_slt.experiments.claims import (
    System,
    Part,
    bootstrap_sd,
    claims_markdown,
    compare,
    contrast_bootstrap_sd,
    judge_parts,
    judge_seeds,
    method_spreads,
    replicates_of,
    seed_spread,
)
from lightning_slt.experiments.brix2020 import Claim, Expectation
from lightning_slt.experiments.report import paper_results

from ._synthetic import _synthetic_experiment

SIGMA_SEED = 0.2  # σ = sqrt(2) * 0.2 = 0.283 without hypotheses; 2σ = 0.566
PAPER = paper_results()["wmt14_ende"]["methods"]


def _table(**columns: dict[float, float]) -> dict:
    return {(method, s): System(bleu) for method, cells in columns.items() for s, bleu in cells.items()}


def judge_claims(systems, sigma_seed, references=None, paper=None):
    """One set of runs as a single part (its dense model: the system at 0 %)."""
    dense = next((system for (_, s), system in systems.items() if s == 0), None)
    return judge_parts([Part("", systems, list(references) if references is not None else None, dense)],
                       sigma_seed, paper)


def _verdict(verdicts, number):
    return next(v for v in verdicts if v.number == number)


def test_the_papers_own_table_gives_the_papers_verdicts():
    """Table 1's numbers at the reproduction's sparsities (50, 80, 90, 95 %) with σ_seed = 0.1
    (2σ = 0.28, the paper's own "≈ within about 0.2 BLEU"): claims 1, 2, 3 and 5 hold on the
    paper's own table; 4 does not (CLT is 0.7 below SLT at 80 %, the "mixed" its text concedes)."""
    keep = {0.5, 0.8, 0.9, 0.95}
    columns = {m: {float(s): b for s, b in PAPER[m]["bleu"].items() if b is not None and float(s) in keep}
               for m in ("mp", "lt", "slt", "clt", "slt_mp", "mp_slt")}
    columns["slt_mp"] = {s: b for s, b in columns["slt_mp"].items() if s >= 0.8}  # its MP-trained rows
    verdicts = judge_claims(_table(**columns), sigma_seed=0.1, paper=PAPER)
    assert _verdict(verdicts, 1).verdict == "holds"  # SLT ≥ MP to 85 %, MP ahead from 90 %
    assert _verdict(verdicts, 2).verdict == "holds"  # LT below MP everywhere
    assert _verdict(verdicts, 3).verdict == "holds"
    assert [round(c.delta, 1) for c in _verdict(verdicts, 5).comparisons] == [0.7, 1.1]
    assert _verdict(verdicts, 5).verdict == "holds"
    four = _verdict(verdicts, 4)
    assert four.verdict == "does not hold" and four.missing == ["random_sign"]
    assert [(c.sparsity, round(c.delta, 1)) for c in four.comparisons if c.outcome == "violated"] == [(0.8, -0.7)]
    first = _verdict(verdicts, 1).comparisons[0]
    assert first.paper_delta == pytest.approx(0.2) and first.delta == pytest.approx(0.2)


@pytest.mark.parametrize("mp90, verdict", [(23.0, "holds"), (21.8, "inconclusive"), (20.0, "does not hold")])
def test_claim_one_at_ninety_percent(mp90, verdict):
    """MP ahead at 90 % needs MP − SLT > 2σ (0.57): +1.5 is met, +0.3 unclear, −1.5 violated."""
    table = _table(mp={0.5: 30.0, 0.9: mp90}, slt={0.5: 30.3, 0.9: 21.5})
    assert _verdict(judge_claims(table, SIGMA_SEED), 1).verdict == verdict


def test_claim_one_fails_when_mp_is_clearly_ahead_below_85_percent():
    table = _table(mp={0.5: 31.0, 0.9: 25.0}, slt={0.5: 30.0, 0.9: 23.0})
    one = _verdict(judge_claims(table, SIGMA_SEED), 1)
    assert one.verdict == "does not hold"
    assert [(c.sparsity, c.outcome) for c in one.comparisons] == [(0.5, "violated"), (0.9, "met")]


def test_sigma_combines_seed_spread_twice_with_the_bootstrap():
    table = _table(slt={0.5: 30.0}, mp={0.5: 29.0})
    c = compare("slt", "mp", 0.5, "≥", table, None, 0.3)
    assert c.sigma == pytest.approx(math.sqrt(2) * 0.3) and c.delta == pytest.approx(1.0) and c.observed == ">"


def test_bootstrap_sd_of_real_outputs():
    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(60)]
    same = list(refs)
    other = [r if i % 3 else "eine katze schläft ." for i, r in enumerate(refs)]
    assert bootstrap_sd(same, same, refs) == 0.0
    sd = bootstrap_sd(same, other, refs)
    assert 1.0 < sd < 20.0
    assert bootstrap_sd(same, other, refs) == sd  # seeded: the same every time
    table = {("slt", 0.5): System(100.0, same), ("random_mask", 0.5): System(60.0, other)}
    controls = judge_claims(table, 0.0, references=refs)
    assert _verdict(controls, "random_mask").comparisons[0].sigma == pytest.approx(sd)
    with pytest.raises(ValueError, match="one hypothesis per reference: 60, 59 and 60"):
        bootstrap_sd(same, other[:-1], refs)


def test_across_parts_the_bootstrap_resamples_both_dense_models_too():
    """(a − dense_a) − (b − dense_b): with identical dense outputs the four-term contrast is the
    two-system bootstrap exactly; when one part's dense model errs on other sentences, its
    test-set noise widens σ."""
    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(60)]
    miss = lambda every, shift=0: [r if (i + shift) % every else "eine katze schläft ." for i, r in enumerate(refs)]
    a, b, dense = miss(3), miss(4), list(refs)
    pair = bootstrap_sd(a, b, refs)
    assert contrast_bootstrap_sd([(1, a), (-1, dense), (-1, b), (1, dense)], refs) == pytest.approx(pair, abs=1e-9)
    noisy_dense = miss(5, shift=1)
    four = contrast_bootstrap_sd([(1, a), (-1, dense), (-1, b), (1, noisy_dense)], refs)
    assert four > pair * 1.05

    def part(name, method, hypotheses, dense_hypotheses):
        return Part(name, {(method, 0.9): System(50.0, hypotheses), ("dense", 0.0): System(60.0, dense_hypotheses)},
                    refs, System(60.0, dense_hypotheses))

    three = {c.b: c for c in _verdict(judge_parts([part("p", "slt_mp", a, dense), part("q", "mp", b, noisy_dense)],
                                                   0.0), 3).comparisons}
    assert three["mp"].across and three["mp"].sigma == pytest.approx(four)


def test_missing_systems_make_a_claim_inconclusive_and_are_listed():
    table = _table(mp={0.5: 30.0, 0.9: 25.0}, slt={0.5: 30.1}, lt={0.5: 28.0, 0.9: 22.0})
    verdicts = judge_claims(table, SIGMA_SEED)
    one = _verdict(verdicts, 1)
    assert one.verdict == "inconclusive" and [c.sparsity for c in one.comparisons] == [0.5]
    assert one.missing == ["mp and slt at ≥ 90 %"]
    assert _verdict(verdicts, 2).verdict == "holds"


def test_seed_spread_needs_three_seeds_and_markdown_lists_every_verdict():
    assert seed_spread([30.0, 30.4, 29.8]) == pytest.approx(0.3055, abs=1e-4)
    with pytest.raises(ValueError, match="at least 3 seeds, got 2"):
        seed_spread([30.0, 30.4])
    verdicts = judge_claims(_table(mp={0.0: 31.2, 0.5: 30.0}, lt={0.0: 31.2, 0.5: 28.0}), SIGMA_SEED, paper=PAPER)
    text = claims_markdown(verdicts, SIGMA_SEED, dense_bleu=31.2)
    # paper: LT 25.4 and MP 26.4 against its dense 26.8; ours against our dense 31.2
    assert "| 2 | lt − mp | 50% |  | -1.4, -0.4 | -1.0 | -3.20, -1.20 | -2.00 ± 0.28 | < | < | met |" in text
    assert "| 1. SLT ≈ MP up to 85 % sparsity, and MP is clearly better at ≥ 90 % | **inconclusive** | slt |" in text
    assert "| 2. LT (reset to θ0) is below MP at every sparsity | **holds** |  |" in text
    assert "σ_seed = 0.20" in text and "Dense test BLEU 31.20" in text


def test_report_claims_on_an_experiment_folder(tmp_path):
    """`lightning-slt report --claims`: the seed spread from three dense seeds, the bootstrap from
    the runs' own test outputs, claims.md written beside the report."""
    from lightning_slt.experiments.cli import report_main

    _synthetic_experiment(tmp_path, {"mp": 27.0, "slt": 29.0}, seeds=(0,), dense_only=(1, 2))
    assert report_main([str(tmp_path), "--claims", "--paper", "none"]) == 0
    text = (tmp_path / "claims.md").read_text()
    assert "σ_seed = 0.31 BLEU" in text and "Dense test BLEU 30.00" in text
    assert "Protocol: T = ? steps per run; seeds: dense 0, 1, 2; mp 0; slt 0." in text  # dense-only seeds: dense's
    row = next(line for line in text.splitlines() if line.startswith("| 1 | slt − mp | 50% |"))
    delta, sigma = row.split("|")[8].split("±")
    assert float(delta) == pytest.approx(2.0) and float(sigma) > math.sqrt(2) * 0.3055  # the bootstrap adds to it
    assert "| 1. SLT ≈ MP up to 85 % sparsity, and MP is clearly better at ≥ 90 % | **inconclusive** | mp and slt at ≥ 90 % |" in text


def test_report_claims_refuses_fewer_than_three_dense_seeds(tmp_path):
    from lightning_slt.experiments.cli import report_main

    _synthetic_experiment(tmp_path, {"mp": 27.0, "slt": 29.0}, seeds=(0,), dense_bleu=(30.0, 30.4), dense_only=(1,))
    with pytest.raises(SystemExit, match="at least 3 seeds, got 2; train it with seeds: \\[0, 1, 2\\]"):
        report_main([str(tmp_path), "--claims", "--paper", "none"])
    assert not (tmp_path / "claims.md").exists()


def _part(root, name, runs: dict, dense_seeds=(), dense_bleu=30.0, methods=None):
    """One part folder as the runner writes it: runs = {lineage: (kind, method, sparsity, BLEU,
    wrong test lines)}, seed 0, plus dense-only seeds at dense_bleu + 0.4 * seed; ``methods``:
    the part's configured methods (default: those of its runs)."""
    import json

    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(40)]
    folder = root / name
    methods = methods or sorted({method for _, method, *_ in runs.values() if method != "dense"})
    runs = {"dense": ("dense", "dense", 0.0, dense_bleu, 0), **runs}
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"config": {"methods": methods, "seeds": [0],
                                                                   "dense_seeds": list(dense_seeds)}, "runs": list(runs)}))
    for seed in (0, *dense_seeds):
        for run, (kind, method, sparsity, bleu, wrong) in runs.items():
            if seed and kind != "dense":
                continue
            out = folder / f"seed{seed}" / run
            (out / "test").mkdir(parents=True)
            (out / "test" / "hypotheses_test.txt").write_text(
                "".join(("eine katze ." if i < wrong else r) + "\n" for i, r in enumerate(refs)))
            (out / "test" / "references_test.txt").write_text("".join(r + "\n" for r in refs))
            value = bleu + 0.4 * seed
            shown = sorted({m for _, m, *_ in runs.values() if m != "dense"}) if kind == "dense" else [method]
            (out / "metrics.json").write_text(json.dumps({
                "run": run, "kind": kind, "seed": seed, "methods": shown, "reported_in": shown,
                "sparsity_target": sparsity, "sparsity": sparsity, "remaining_parameters": 1, "sparse_mb": 1.0,
                "valid": {"bleu": value}, "test": {"bleu": value, "chrf": 50.0, "ter": 60.0}, "steps": 10,
                "wall_time_s": 1.0, "lineage_steps": 10 * (1 + run.count("/")), "lineage_wall_time_s": 1.0,
                "mask_from": None, "weights_from": None, "layer_sparsity": {} if kind == "dense" else {
                    f"model.{side}.layers.{i}.{m}.weight": sparsity for side in ("encoder", "decoder")
                    for i in range(2) for m in ("self_attn.q_proj", "ffn.fc1")}}))
    return folder


def test_a_control_is_judged_beside_the_slt_round_its_own_part_trained(tmp_path):
    """A part that runs random re-init but not SLT (the reproduction's p4) still trains the SLT 50 %
    round it branches from: the report shows it as SLT, and the control is judged within that
    part, not across against another part's SLT."""
    from lightning_slt.experiments.claims import write_claims
    from lightning_slt.experiments.report import collect, collect_parts

    _part(tmp_path, "a", {"dense/slt_0.50": ("slt", "slt", 0.5, 29.0, 2), "mp_0.50": ("mp", "mp", 0.5, 29.5, 2)},
          dense_seeds=(1, 2))
    _part(tmp_path, "b", {"dense/slt_0.50": ("slt", "slt", 0.5, 28.0, 3),
                          "dense/random_reinit_0.50": ("random_reinit", "random_reinit", 0.5, 20.0, 12)},
          methods=["random_reinit"])
    (tmp_path / "parts.json").write_text('{"parts": ["b", "a"]}')  # the control's part first
    methods, rows = collect(tmp_path / "b")
    assert methods == ["random_reinit", "slt"]
    assert {(r["method"], r["sparsity"]) for r in rows} >= {("slt", 0.5), ("slt", 0.0), ("random_reinit", 0.5)}
    _, verdicts = write_claims(tmp_path)
    [control] = next(v for v in verdicts if v.number == "random_reinit").comparisons
    assert (control.part, control.across, control.delta) == ("b", False, pytest.approx(8.0))
    _, joint = collect_parts(tmp_path)  # SLT's column is the part that runs SLT, though b comes first
    assert {(r["part"], r["sparsity"]) for r in joint if r["method"] == "slt" and r["first_part"]} == {
        ("a", 0.0), ("a", 0.5)}


def test_across_parts_a_method_comes_from_the_part_configured_to_run_it():
    """SLT-MP (part c) against SLT at 90 %: the SLT of part a, which runs SLT, not the SLT round
    that part b (listed first) trained only for its control."""
    control = Part("b", {("slt", 0.9): System(20.0), ("dense", 0.0): System(30.0)}, dense=System(30.0),
                   methods=["random_reinit"])
    slt = Part("a", {("slt", 0.9): System(27.0), ("dense", 0.0): System(31.0)}, dense=System(31.0), methods=["slt"])
    combined = Part("c", {("slt_mp", 0.9): System(28.0), ("dense", 0.0): System(30.0)}, dense=System(30.0),
                    methods=["slt_mp"])
    three = {c.b: c for c in _verdict(judge_parts([control, slt, combined], 0.1), 3).comparisons}
    assert (three["slt"].part, three["slt"].delta) == ("c ↔ a", pytest.approx(-2.0 - -4.0))


def test_claims_over_parts_compare_within_a_part_and_across_only_where_no_part_ran_both(tmp_path):
    """Part a: SLT and MP with the seed spread (dense seeds 0, 1, 2: 30.0, 30.4, 30.8, sd 0.4);
    part b: SLT and CLT. Claim 4 (CLT vs SLT) is judged inside b, claim 1 inside a; SLT-MP (part
    c) against MP (part a) only across, on BLEU relative to each part's dense model."""
    from lightning_slt.experiments.claims import write_claims

    _part(tmp_path, "a", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.0, 8), "mp_0.90": ("mp", "mp", 0.9, 26.0, 10)},
          dense_seeds=(1, 2))
    _part(tmp_path, "b", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.5, 8), "dense/clt_0.90": ("clt", "clt", 0.9, 27.4, 8)},
          dense_bleu=30.5)
    _part(tmp_path, "c", {"dense/slt_0.50/slt_0.60/mp_0.90": ("mp", "slt_mp", 0.9, 28.0, 6)}, dense_bleu=28.5)
    (tmp_path / "d").mkdir()  # a part still training: its dense run has no metrics.json yet
    (tmp_path / "d" / "experiment.json").write_text('{"config": {"methods": ["lt"], "seeds": [0]}, "runs": ["dense"]}')
    # f: its dense run finished, its LT round not yet: judged on it, LT at 50 % would be "met" alone
    _part(tmp_path, "f", {"dense/lt_0.50": ("lt", "lt", 0.5, 20.0, 30)}, dense_bleu=30.0)
    (tmp_path / "f" / "experiment.json").write_text(
        '{"config": {"methods": ["lt"], "seeds": [0]}, "runs": ["dense", "dense/lt_0.50", "dense/lt_0.50/lt_0.90"]}')
    (tmp_path / "parts.json").write_text('{"parts": ["a", "b", "c", "d", "e", "f"]}')  # e: planned, never started
    path, verdicts = write_claims(tmp_path)
    by = {v.number: v for v in verdicts}
    [one] = by[1].comparisons
    assert (one.part, one.across, one.delta) == ("a", False, pytest.approx(-1.0))  # mp − slt in a, not b's slt
    [four] = by[4].comparisons
    assert (four.a, four.b, four.part, four.delta) == ("clt", "slt", "b", pytest.approx(-0.1))
    three = {c.b: c for c in by[3].comparisons}
    mp = three["mp"]
    assert mp.across and mp.part == "c ↔ a"
    assert (mp.a_rel, mp.b_rel, mp.delta) == (pytest.approx(-0.5), pytest.approx(-4.0), pytest.approx(3.5))
    assert three["slt"].part == "c ↔ a"  # a is the first part with SLT at 90 %
    within = math.sqrt(2 * 0.4**2 + 0)  # no bootstrap spread where the outputs are identical (b's SLT, CLT)
    assert four.sigma == pytest.approx(within)
    assert mp.sigma > math.sqrt(4 * 0.4**2)  # two seed draws per side, and the bootstrap
    text = path.read_text()
    assert "σ_seed = 0.40 BLEU" in text  # part a's three seeds, not seed 0 of another part beside them
    assert "Parts not finished yet, left out: d (0 of 1 runs), f (2 of 3 runs).\n\nParts not run yet: e." in text
    assert by[2].verdict == "inconclusive" and by[2].missing == ["lt"] and "| 2. LT (reset to θ0)" in text
    assert "| a | 30.00 | (the reference) |" in text and "| b | 30.50 | Δ +0.50 ± 0.57: agrees |" in text
    assert "| c | 28.50 | Δ -1.50 ± 0.57: does not agree |" in text
    paper = PAPER["slt_mp"]["bleu"]["0.90"] - 26.8, PAPER["mp"]["bleu"]["0.90"] - 26.8
    assert f"| 3 | slt_mp − mp | 90% | c ↔ a | {paper[0]:+.1f}, {paper[1]:+.1f} |" in text
    assert "| -0.50, -4.00 | +3.50 ± " in text


def test_the_compute_row_sets_mp_for_the_lineages_steps_against_slt_lt_and_mp_of_one_run():
    """Claim 2 (LT below MP) at equal compute: MP for the 90 % lineage's steps against LT at 90 %,
    across the parts that ran them, beside SLT and MP of one run; recorded, not judged."""
    lineage = Part("p4", {("mp_lineage", 0.9): System(31.0), ("dense", 0.0): System(30.0)}, dense=System(30.0),
                   methods=["mp_lineage"])
    slt_mp = Part("p1", {("slt", 0.9): System(29.5), ("mp", 0.9): System(25.0), ("dense", 0.0): System(29.0)},
                  dense=System(29.0), methods=["slt", "mp"])
    lt = Part("p2", {("lt", 0.9): System(30.2), ("dense", 0.0): System(30.0)}, dense=System(30.0), methods=["lt"])
    compute = _verdict(judge_parts([slt_mp, lt, lineage], 0.1), "compute")
    rows = {c.b: (c.part, c.delta, c.outcome) for c in compute.comparisons}
    assert rows == {"slt": ("p4 ↔ p1", pytest.approx(1.0 - 0.5), "measured"),
                    "lt": ("p4 ↔ p2", pytest.approx(1.0 - 0.2), "measured"),
                    "mp": ("p4 ↔ p1", pytest.approx(1.0 - -4.0), "measured")}
    assert compute.verdict == "measured"


# ---------------------------------------------------------------- the per-method seed rule


def _seeded_part(name, by_seed: dict[int, dict], references=None, hypotheses=None, methods=("slt", "mp", "lt")):
    """A part with every seed's systems: by_seed = {seed: {(method, s): BLEU}} (dense at 0 %)."""
    seeds = {seed: {key: System(bleu, (hypotheses or {}).get((seed, key)), f"{key[0]}_{key[1]}")
                    for key, bleu in cells.items()} for seed, cells in by_seed.items()}
    first = seeds[min(seeds)]
    return Part(name, first, references, first[("dense", 0.0)], list(methods), seeds)


SEEDED = {0: {("dense", 0.0): 30.0, ("slt", 0.5): 29.0, ("slt", 0.9): 27.0, ("mp", 0.5): 28.5, ("mp", 0.9): 28.0,
              ("lt", 0.5): 27.0},
          1: {("dense", 0.0): 30.4, ("slt", 0.5): 29.6, ("slt", 0.9): 27.2, ("mp", 0.5): 28.7, ("mp", 0.9): 28.6}}


def test_per_method_rule_uses_each_methods_own_seed_spread_relative_to_its_dense_model():
    """Relative BLEU (run − its seed's dense): SLT −1.0/−0.8 at 50 %, −3.0/−3.2 at 90 %; MP −1.5/−1.7,
    −2.0/−1.8. Each cell has one degree of freedom and squares 0.02: σ_SLT = σ_MP = sqrt(0.04 / 2);
    LT (seed 0 only) takes all methods pooled, sqrt(0.08 / 4); no hypotheses, so no bootstrap term."""
    part = _seeded_part("p", SEEDED)
    spread = method_spreads(replicates_of([part]))
    assert spread.by_method == pytest.approx({"slt": math.sqrt(0.02), "mp": math.sqrt(0.02)})
    assert spread.dof == {"slt": 2, "mp": 2} and spread.pooled == pytest.approx(math.sqrt(0.02))
    verdicts, _ = judge_seeds([part])
    one = {c.sparsity: c for c in _verdict(verdicts, 1).comparisons}
    assert one[0.5].delta == pytest.approx(0.7) and one[0.5].outcome == "met"  # SLT ≥ MP at 50 %
    assert one[0.9].delta == pytest.approx(1.2) and one[0.9].sigma == pytest.approx(math.sqrt(0.02 / 2 + 0.02 / 2))
    assert one[0.9].outcome == "met" and one[0.9].seeds == (2, 2) and _verdict(verdicts, 1).verdict == "holds"
    (lt,) = _verdict(verdicts, 2).comparisons
    assert lt.delta == pytest.approx(-3.0 + 1.6) and lt.sigma == pytest.approx(math.sqrt(0.02 / 1 + 0.02 / 2))
    assert lt.seeds == (1, 2) and lt.outcome == "met"


def test_per_method_rule_takes_a_seed_from_the_part_that_runs_the_method_relative_to_that_parts_dense():
    """SLT's seed 1 trained in a second part (on another machine: its dense model 2 BLEU lower):
    relative to its own dense model it counts like the first part's; the first part's SLT rounds
    trained only beside a control (not configured) are not taken where a part runs SLT."""
    control = _seeded_part("c", {0: {("dense", 0.0): 30.0, ("slt", 0.9): 20.0}}, methods=["random_mask"])
    first = _seeded_part("a", {0: {("dense", 0.0): 30.0, ("slt", 0.9): 27.0, ("mp", 0.9): 28.0}})
    second = _seeded_part("b", {1: {("dense", 0.0): 28.4, ("slt", 0.9): 25.2, ("mp", 0.9): 26.6}})
    runs = replicates_of([control, first, second])
    assert [(r.part, r.seed, r.relative) for r in runs[("slt", 0.9)]] == [("a", 0, -3.0), ("b", 1, pytest.approx(-3.2))]
    comparison = _verdict(judge_seeds([control, first, second])[0], 1).comparisons[0]
    assert (comparison.a, comparison.b) == ("mp", "slt") and comparison.delta == pytest.approx(-1.9 + 3.1)
    assert comparison.across and comparison.part == "a, b ↔ a, b"


def test_per_method_bootstrap_counts_each_test_output_once_with_its_weight():
    """SLT under two seeds (its outputs and its dense models' weigh 1/2 each), MP under one: seed
    0's dense output appears on both sides, and counts once with the summed weight (+1/2)."""
    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(40)]

    def outputs(wrong):
        return ["eine katze ." if i < wrong else r for i, r in enumerate(refs)]

    hyps = {(0, ("dense", 0.0)): outputs(0), (0, ("slt", 0.5)): outputs(4), (0, ("mp", 0.5)): outputs(12),
            (1, ("dense", 0.0)): outputs(1), (1, ("slt", 0.5)): outputs(6)}
    cells = {0: {("dense", 0.0): 30.0, ("slt", 0.5): 29.0, ("mp", 0.5): 28.0, ("lt", 0.5): 28.0},
             1: {("dense", 0.0): 30.4, ("slt", 0.5): 29.2, ("lt", 0.5): 28.2}}  # LT: a second degree of freedom
    part = _seeded_part("p", cells, refs, hyps)
    claim = Claim("x", "x", (Expectation("slt", "mp", "?"),), from_paper=False)
    (verdict,), spread = judge_seeds([part], claims=[claim])
    expected_bs = contrast_bootstrap_sd([(0.5, hyps[(0, ("slt", 0.5))]), (0.5, hyps[(0, ("dense", 0.0))]),
                                         (0.5, hyps[(1, ("slt", 0.5))]), (-0.5, hyps[(1, ("dense", 0.0))]),
                                         (-1.0, hyps[(0, ("mp", 0.5))])], refs)
    (c,) = verdict.comparisons
    assert spread.pooled == pytest.approx(math.sqrt(0.02)) and expected_bs > 0
    assert c.sigma == pytest.approx(math.sqrt(0.02 / 2 + 0.02 / 1 + expected_bs ** 2))


def test_per_method_rule_needs_two_degrees_of_freedom():
    part = _seeded_part("p", {0: {("dense", 0.0): 30.0, ("slt", 0.5): 29.0},
                              1: {("dense", 0.0): 30.4, ("slt", 0.5): 29.6}})
    with pytest.raises(ValueError, match="needs at least 2 degrees of freedom of seed spread"):
        judge_seeds([part])


def test_report_claims_judge_methods_under_several_seeds_by_their_own_spread(tmp_path):
    """Every method under three seeds: claims.md says the per-method rule and the protocol, and
    judges on the seeds' mean relative BLEU (SLT −1.0, −1.6, −0.6 against dense 30.0, 30.4, 29.8)."""
    from lightning_slt.experiments.cli import report_main

    _synthetic_experiment(tmp_path, {"mp": (27.0, 27.0, 27.0), "slt": (29.0, 28.8, 29.2)})
    assert report_main([str(tmp_path), "--claims", "--paper", "none"]) == 0
    text = (tmp_path / "claims.md").read_text()
    assert text.startswith("# Claims of Brix et al. (2020) on ")
    assert "every seed\n\nProtocol: T = ? steps per run; seeds: dense 0, 1, 2; mp 0, 1, 2; slt 0, 1, 2." in text
    assert "Verdict rule (per-method seeds)" in text and "mp 0.31 (2 df), slt 0.50 (2 df)" in text
    row = next(line for line in text.splitlines() if line.startswith("| 1 | slt − mp | 50% |"))
    assert "(n 3, 3)" in row and row.split("|")[8].split("±")[0].strip() == "+2.00"
