"""The paper's methods as chains of runs: plain data, built before anything trains.

A run is named by its lineage, so the folder path *is* the chain and runs that are the same
run (same parents, same kind, same target) get the same name and are trained once:

    dense                                   the dense run (θ0, θk, θT)
    dense/slt_0.50/slt_0.60                 SLT rounds, each from its parent's θT mask and θk
    dense/slt_0.50/slt_0.60/mp_0.90         SLT-MP: MP from the 60 % ticket (s0 = 0.6)
    mp_0.60                                 MP from scratch, one run per target
    mp_0.60/slt_0.70                        MP-SLT: SLT rounds from the MP 60 % mask
    dense/slt_0.40/random_mask_0.50         a control beside the SLT round dense/slt_0.40/slt_0.50

Chain semantics (Brix et al. §3-4): LT rewinds to θ0 of the dense run; SLT/CLT to θk of the
*most recent* run; every run restarts at step 0 with fresh optimizer state.

Controls (Frankle & Carbin 2019; OpenLTH), each beside the SLT (CLT) round of the same target,
that is with the same parent: ``random_mask`` draws a mask over the whole tensor with that
round's per-tensor counts and takes the *dense* run's θk (non-zero everywhere, so no kept weight
starts at an accidental 0); ``random_reinit`` keeps the round's mask and draws every tensor from
the model's own initialiser; ``random_sign`` keeps CLT's mask and magnitudes, random signs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import ExperimentConfig, Schedule

CB = "lightning_slt.callbacks."


@dataclass
class RunSpec:
    """One training run of a chain.

    Attributes:
        name: lineage path relative to the seed folder (also its folder).
        kind: dense, mp, lt, slt, clt, random_mask, random_reinit or random_sign.
        sparsity: final sparsity of the run.
        parent: the run whose θT gives the mask (and, except for LT, whose θk gives the weights).
        weights_from: the run whose θ_step the weights are rewound to (LT: the dense run's θ0).
        rewind_step: the step of ``weights_from`` the weights come from.
        initial_sparsity: MP's s0 (0.6 in SLT-MP).
        methods: the methods that need this run (the first is its W&B ``job_type``).
        reported_in: the methods whose results table shows this run.
        best_after_step: the best checkpoint is chosen among validations at or after this step
            (MP: after the ramp ends, so only checkpoints at the final sparsity count).
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

    @property
    def lineage(self) -> list[str]:
        """This run's ancestors, oldest first (the folders above it, plus LT's θ0 source)."""
        parts = self.name.split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]

    def callbacks(self, last_ckpt: dict[str, str], schedule: Schedule, seed: int) -> list[dict]:
        """LightningCLI ``class_path``/``init_args`` of this run's pruning callbacks.

        Every run records θk (``WeightRewind(k)``) for the rounds after it; the dense run also
        records θ0 for LT. ``WeightRewind(step, source=...)`` both starts from the source's
        θ_step and records this run's own.

        Args:
            last_ckpt: run name -> path of its last checkpoint (θT, θk snapshots, mask).
        """
        k = schedule.rewind_step
        if self.kind == "dense":
            return [_cb("WeightRewind", step=0)] + ([_cb("WeightRewind", step=k)] if k else [])
        if self.kind == "mp":
            mp = _cb("GradualMagnitudePruning", final_sparsity=self.sparsity, initial_sparsity=self.initial_sparsity,
                     end_step=schedule.mp_end_step, frequency=schedule.mp_frequency)
            if self.parent is None:
                return [mp, _cb("WeightRewind", step=k)]
            return [_cb("ConvergedMask", checkpoint=last_ckpt[self.parent], sparsity=self.initial_sparsity),
                    _cb("WeightRewind", step=k, source=last_ckpt[self.parent]), mp]
        if self.kind == "random_mask":  # the SLT round's per-tensor counts, drawn over the whole tensor
            mask = _cb("RandomMask", sparsity=self.sparsity, like=last_ckpt[self.parent], seed=seed)  # type: ignore[index]
        else:
            mask = _cb("ConvergedMask", checkpoint=last_ckpt[self.parent], sparsity=self.sparsity)  # type: ignore[index]
        callbacks = [mask, _cb("WeightRewind", step=self.rewind_step, source=last_ckpt[self.weights_from])]  # type: ignore[index]
        extra = {
            "clt": _cb("SignOnlyReinit", magnitude=schedule.clt_magnitude),
            "random_sign": _cb("SignOnlyReinit", sign="random", seed=seed),
            "random_reinit": _cb("RandomReinit", seed=seed),
        }
        return callbacks + ([extra[self.kind]] if self.kind in extra else [])


def _cb(name: str, **init_args) -> dict:
    return {"class_path": CB + name, "init_args": init_args}


def _tag(kind: str, sparsity: float) -> str:
    return f"{kind}_{sparsity:.2f}"


class _Chain:
    """Collects runs by name; a run met again (shared prefix) only gains the new method."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.runs: dict[str, RunSpec] = {}

    def add(self, spec: RunSpec, method: str, reported: bool = True) -> RunSpec:
        run = self.runs.setdefault(spec.name, spec)
        for names, add in ((run.methods, True), (run.reported_in, reported)):
            if add and method not in names:
                names.append(method)
        return run

    def dense(self, method: str) -> RunSpec:
        return self.add(RunSpec("dense", "dense", 0.0), method)

    def rounds(self, start: RunSpec, kind: str, targets: list[float], method: str, reported: bool = True) -> list[RunSpec]:
        """Iterative rounds from ``start``: each round's mask from its parent's θT; weights from
        the parent's θk (SLT, CLT) or the dense run's θ0 (LT)."""
        parent, out = start, []
        for target in targets:
            lt = kind == "lt"
            spec = RunSpec(f"{parent.name}/{_tag(kind, target)}", kind, target, parent.name,
                           "dense" if lt else parent.name, rewind_step=0 if lt else self.schedule.rewind_step)
            parent = self.add(spec, method, reported)
            out.append(parent)
        return out

    def mp(self, target: float, method: str, parent: RunSpec | None = None, initial: float = 0.0) -> RunSpec:
        name = _tag("mp", target) if parent is None else f"{parent.name}/{_tag('mp', target)}"
        source = parent.name if parent else None
        spec = RunSpec(name, "mp", target, source, source, rewind_step=self.schedule.rewind_step,
                       initial_sparsity=initial, best_after_step=self.schedule.mp_end_step)
        return self.add(spec, method)


def build_runs(config: ExperimentConfig, schedule: Schedule) -> list[RunSpec]:
    """Every run the experiment needs, parents before children, each once."""
    chain = _Chain(schedule)
    targets = list(config.targets)
    for method in config.methods:
        dense = chain.dense(method)
        if method == "mp":
            for target in targets:
                chain.mp(target, method)
        elif method in ("lt", "slt", "clt"):
            chain.rounds(dense, method, targets, method)
        elif method == "slt_mp":
            switch = config.slt_mp_switch
            ticket = chain.rounds(dense, "slt", [0.5, switch] if switch > 0.5 else [switch], method)[-1]
            for target in (t for t in targets if t > switch):
                chain.mp(target, method, parent=ticket, initial=switch)
        elif method == "mp_slt":
            source = chain.mp(config.mp_slt_source, method)
            chain.rounds(source, "slt", [t for t in targets if t > config.mp_slt_source], method)
        else:  # a control: beside the SLT (CLT) round of each target, one ingredient changed
            base = chain.rounds(dense, "clt" if method == "random_sign" else "slt", targets[:-1], method, reported=False)
            for parent, target in zip([dense, *base], targets):
                weights = "dense" if method == "random_mask" else parent.name  # θk non-zero everywhere
                chain.add(RunSpec(f"{parent.name}/{_tag(method, target)}", method, target, parent.name, weights,
                                  rewind_step=schedule.rewind_step), method)
    return sorted(chain.runs.values(), key=lambda run: run.name.count("/"))


def method_rows(runs: list[RunSpec], method: str) -> dict[float, RunSpec]:
    """The run reported at each sparsity in ``method``'s column (0 % is the dense run)."""
    return dict(sorted((run.sparsity, run) for run in runs if method in run.reported_in))
