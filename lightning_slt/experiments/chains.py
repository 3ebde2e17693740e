"""An experiment's runs as plain data, built before anything trains: its schedule in steps, its runs.

A run is named by its lineage, so the folder path *is* the chain and runs that are the same
run (same parents, same kind, same target) get the same name and are trained once:

    dense                                   the dense run (θ0, θk, θT)
    dense/slt_0.50/slt_0.60                 SLT rounds, each from its parent's θT mask and θk
    dense/slt_0.50/slt_0.60/mp_0.90         SLT-MP: MP from the 60 % ticket (s0 = 0.6)
    mp_0.60                                 MP from scratch, one run per target
    mp_0.60/slt_0.70                        MP-SLT: SLT rounds from the MP 60 % mask
    dense/slt_0.40/random_mask_0.50         a control beside the SLT round dense/slt_0.40/slt_0.50
    dense/slt_0.50/slt_dense_k_0.60         rounds rewound to the *dense* run's θk (Frankle et al.)
    mp_0.90_4x                              MP trained as long as the SLT 90 % lineage (4 runs)

Which runs each method needs, and their callbacks, are entries of ``methods.METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lightning_slt.pruning.schedule import paper_schedule


class Settings(Protocol):
    """The fields of an ``ExperimentConfig`` that schedules and chains read (config.py checks its
    methods against the registry, which builds chains, so this module cannot import it)."""

    methods: list[str]
    targets: list[float]
    rewind_step: int | None
    mp_end_step: int | None
    mp_frequency: int | None
    warmup_steps: int | None
    clt_magnitude: str
    slt_mp_switch: float
    mp_slt_source: float
    method_targets: dict[str, list[float]]

    def targets_of(self, method: str) -> list[float]: ...


@dataclass(frozen=True)
class Schedule:
    """What defines an experiment's runs beyond their lineage: step counts resolved from
    ``max_steps``, and CLT's constant."""

    max_steps: int
    rewind_step: int
    mp_end_step: int
    mp_frequency: int
    warmup_steps: int | None
    clt_magnitude: str = "fan_avg"

    @classmethod
    def resolve(cls, config: Settings, max_steps: int, module_warmup: bool = True) -> Schedule:
        """The config's steps, the paper's proportions (``paper_schedule``) where it sets none; the
        one place the experiment's rewind step is checked against the run.

        ``module_warmup``: the module takes a ``warmup_steps`` argument (the runner sets it). A
        module without one has no known warm-up unless the config declares it (``warmup_steps``,
        the warm-up the module applies itself): then ``warmup_steps`` is None, unchecked."""
        if max_steps <= 0:
            raise ValueError("the base config must bound runs with trainer.max_steps (the paper: 500k); got none")
        paper = paper_schedule(max_steps)
        steps = {key: value if (value := getattr(config, key)) is not None else paper[key] for key in paper}
        if not module_warmup and config.warmup_steps is None:
            steps["warmup_steps"] = None
        schedule = cls(max_steps=max_steps, **steps, clt_magnitude=config.clt_magnitude)
        if schedule.rewind_step > max_steps:
            raise ValueError(
                f"rewind_step {schedule.rewind_step} is beyond the run's max_steps {max_steps}; "
                "choose k inside the run (the paper: 5 %)"
            )
        if schedule.mp_end_step > max_steps:
            raise ValueError(f"mp_end_step {schedule.mp_end_step} is beyond the run's max_steps {max_steps}")
        return schedule

    def warnings(self) -> list[str]:
        """Where this schedule leaves the paper's proportions (w ≤ k ≤ 10 % of T)."""
        out = []
        if self.warmup_steps is None:
            out.append("the warm-up rule (θk after the warm-up) was not checked: the module takes no warmup_steps "
                       "argument and the experiment declares none; set the experiment's warmup_steps to the warm-up "
                       "your module applies, or give the module a warmup_steps argument for the runner to set")
        elif 0 < self.rewind_step < self.warmup_steps:
            out.append(f"rewind_step k={self.rewind_step} lies inside the warm-up ({self.warmup_steps} steps): θk is "
                       "taken before training has stabilised (the paper: warm-up 10k, k = 25k of 500k); raise "
                       "rewind_step or lower warmup_steps")
        if self.rewind_step > 0.1 * self.max_steps:
            out.append(f"rewind_step k={self.rewind_step} is {self.rewind_step / self.max_steps:.0%} of the run "
                       f"({self.max_steps} steps), beyond the 10 % a stabilized ticket rewinds to (the paper: 5 %); "
                       "lower rewind_step or leave it unset")
        return out


@dataclass
class RunSpec:
    """One training run of a chain.

    Attributes:
        name: lineage path relative to the seed folder (also its folder).
        kind: dense, or the registry entry whose callbacks the run gets (mp, lt, slt, clt,
            random_mask, random_reinit, random_sign, slt_dense_k).
        sparsity: final sparsity of the run.
        parent: the run whose θT gives the mask (and, except for LT, whose θk gives the weights).
        weights_from: the run whose θ_step the weights are rewound to (LT: the dense run's θ0).
        rewind_step: the step of ``weights_from`` the weights come from.
        initial_sparsity: MP's s0 (0.6 in SLT-MP).
        methods: the methods that need this run (the first is its W&B ``job_type``).
        reported_in: the methods whose results table shows this run.
        best_after_step: the best checkpoint is chosen among validations at or after this step
            (MP: after the ramp ends, so only checkpoints at the final sparsity count).
        max_steps: the run's length where it is not the schedule's (MP trained for an SLT
            lineage's steps); None = ``Schedule.max_steps``.
    """

    name: str
    kind: str
    sparsity: float
    parent: str | None = None
    weights_from: str | None = None
    rewind_step: int = 0
    initial_sparsity: float = 0.0
    methods: list[str] = field(default_factory=list)
    reported_in: list[str] = field(default_factory=list)
    best_after_step: int = 0
    max_steps: int | None = None

    @property
    def lineage(self) -> list[str]:
        """This run's ancestors, oldest first (the folders above it)."""
        parts = self.name.split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]

    @property
    def builds_on(self) -> set[str]:
        """The runs whose files this one reads: its lineage (the mask's run among them) and the
        run its weights are rewound to."""
        return {*self.lineage, *([self.weights_from] if self.weights_from else [])}


def tag(kind: str, sparsity: float) -> str:
    """A run's folder name below its parent: ``slt_0.50``."""
    return f"{kind}_{sparsity:.2f}"
