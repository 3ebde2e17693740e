"""The paper's claims as data: what each expects, over which sparsities, and that they are judged."""

import pytest

from lightning_slt.experiments.brix2020 import CLAIMS, COMPUTE, Expectation
from lightning_slt.experiments.claims import Part, System, control_claims, judge_parts


def test_five_claims_of_the_paper_and_what_each_compares():
    assert [c.number for c in CLAIMS] == [1, 2, 3, 4, 5] and all(c.from_paper for c in CLAIMS)
    pairs = {c.number: [(e.a, e.b, e.expected) for e in c.expectations] for c in CLAIMS}
    assert pairs[1] == [("slt", "mp", "≥"), ("mp", "slt", ">")]
    assert pairs[2] == [("lt", "mp", "<")]
    assert pairs[3] == [("slt_mp", "lt", "≥"), ("slt_mp", "slt", "≥"), ("slt_mp", "clt", "≥"),
                        ("slt_mp", "mp_slt", "≥"), ("slt_mp", "mp", ">")]
    assert pairs[4] == [("clt", "slt", "≥"), ("clt", "random_sign", ">")]
    assert pairs[5] == [("mp_slt", "slt", ">")]
    assert not COMPUTE.from_paper and {e.expected for e in COMPUTE.expectations} == {"?"}


@pytest.mark.parametrize(("expectation", "inside", "outside"), [
    (Expectation("slt", "mp", "≥", at_most=0.85), [0.5, 0.85], [0.9]),
    (Expectation("mp", "slt", ">", at_least=0.9), [0.9, 0.95], [0.85]),
    (Expectation("lt", "mp", "<"), [0.0, 0.5, 0.98], []),
])
def test_an_expectation_covers_its_sparsity_range_inclusively(expectation, inside, outside):
    assert all(expectation.covers(s) for s in inside) and not any(expectation.covers(s) for s in outside)


def test_each_control_claim_sits_beside_its_methods_round():
    assert [(c.number, c.expectations[0].a, c.expectations[0].b) for c in control_claims()] == [
        ("random_mask", "slt", "random_mask"), ("random_reinit", "slt", "random_reinit"),
        ("random_sign", "clt", "random_sign")]


def test_a_claim_given_as_data_is_judged_by_the_one_rule():
    systems = {("a", 0.0): System(30.0), ("a", 0.5): System(29.0), ("b", 0.5): System(27.0)}
    part = Part("", systems, None, systems[("a", 0.0)], ["a", "b"])
    claim = CLAIMS[0].__class__(9, "a beats b", (Expectation("a", "b", ">"),))
    (verdict,) = judge_parts([part], sigma_seed=0.5, claims=[claim])  # σ = sqrt(2)·0.5: 2σ = 1.41 < 2.0
    assert verdict.verdict == "holds" and [round(c.delta, 2) for c in verdict.comparisons] == [2.0]
