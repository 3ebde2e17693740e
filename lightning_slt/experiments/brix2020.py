"""The five headline claims of Brix, Bahar & Ney (2020), as data (paper.md §4).

Only ``lightning-slt report --claims`` reads this: the framework runs for users who never judge
this paper. Each claim is a list of expectations between two methods over a range of
sparsities; ``claims.judge`` compares wherever both methods were run, by the rule fixed there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    """``a <expected> b`` at every sparsity s with ``at_least <= s <= at_most`` where both were run.

    ``expected``: ">", "<", "≈", "≥" (not below: ≈ or better) or "?" (measured, no expectation).
    ``at`` says the range in a note that nothing was compared there.
    """

    a: str
    b: str
    expected: str
    at_least: float = 0.0
    at_most: float = 1.0
    at: str = ""

    def covers(self, sparsity: float) -> bool:
        return self.at_least <= sparsity <= self.at_most


@dataclass(frozen=True)
class Claim:
    """A claim and what would show it; one of the paper's own is reported even when no run speaks to it."""

    number: int | str
    text: str
    expectations: tuple[Expectation, ...]
    from_paper: bool = True


HIGH = dict(at_least=0.8, at="≥ 80 %")

CLAIMS = (
    Claim(1, "SLT ≈ MP up to 85 % sparsity, and MP is clearly better at ≥ 90 %", (
        Expectation("slt", "mp", "≥", at_most=0.85, at="≤ 85 %"),
        Expectation("mp", "slt", ">", at_least=0.9, at="≥ 90 %"))),
    Claim(2, "LT (reset to θ0) is below MP at every sparsity", (Expectation("lt", "mp", "<"),)),
    Claim(3, "SLT-MP gives the best BLEU at high sparsity (≥ 80 %): not below any method, above MP", (
        *(Expectation("slt_mp", other, "≥", **HIGH) for other in ("lt", "slt", "clt", "mp_slt")),
        Expectation("slt_mp", "mp", ">", **HIGH))),
    Claim(4, "Signs matter more than values: CLT ≈ SLT, and random signs are below CLT", (
        Expectation("clt", "slt", "≥"), Expectation("clt", "random_sign", ">"))),
    Claim(5, "The MP-60 % mask followed by SLT is above plain SLT at ≥ 85 %", (
        Expectation("mp_slt", "slt", ">", at_least=0.85, at="≥ 85 %"),)),
)

# Judged after the controls: MP given a ticket's whole lineage of steps tells "method" from "compute".
COMPUTE = Claim("compute", "Beyond the paper: MP trained for as many steps as the SLT lineage of its target, against that "
                "SLT ticket, the LT ticket of as many steps (claim 2 at equal compute) and MP trained for one run",
                tuple(Expectation("mp_lineage", other, "?") for other in ("slt", "lt", "mp")), from_paper=False)
