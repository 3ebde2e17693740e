"""The methods registry: one entry per method, everything the experiment needs to know of it.

An entry says which runs the method needs (``plan``: a pure function of the config returning
its runs, with their parents), the callbacks of the runs of its kind (``callbacks``), its label
(the column of results.md and the plot's legend) and which rows its report column shows.
Adding a method is adding an entry here.

Chain semantics (Brix et al. §3-4): LT rewinds to θ0 of the dense run; SLT/CLT to θk of the
*most recent* run; every run restarts at step 0 with fresh optimizer state. ``slt_dense_k`` is
the rewinding Brix et al. contrast themselves with (Frankle et al. 2019, paper.md §1.5): every
round rewinds to θk of the *dense* run. Its first round is SLT's first round (the mask of the
dense θT, the dense θk), so the two share that run.

Controls (Frankle & Carbin 2019; OpenLTH) are data (:class:`Control`): each runs beside the SLT
(CLT) round of the same target, that is with the same parent, and changes one ingredient:
``random_mask`` draws a mask over the whole tensor with that round's per-tensor counts and takes
the *dense* run's θk (non-zero everywhere, so no kept weight starts at an accidental 0);
``random_reinit`` keeps the round's mask and draws every tensor from the model's own
initialiser; ``random_sign`` keeps CLT's mask and magnitudes, random signs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from lightning_slt.callbacks import ConvergedMask, GradualMagnitudePruning, RandomMask, RandomReinit
from lightning_slt.callbacks import SignOnlyReinit, WeightRewind
from lightning_slt.launch import Component

from .chains import RunSpec, Schedule, Settings, tag


@dataclass(frozen=True)
class Context:
    """What a run's callbacks are made of besides the run itself.

    Attributes:
        last_ckpt: run name -> path of its last checkpoint (θT, θk snapshots, mask).
    """

    last_ckpt: dict[str, str]
    schedule: Schedule
    seed: int


Plan = Callable[[Settings, Schedule, str], list[RunSpec]]
MakeCallbacks = Callable[[RunSpec, Context], list[Component]]


@dataclass(frozen=True)
class Control:
    """A control: beside the ``beside`` round (slt or clt) of each of its targets, one ingredient changed.

    Attributes:
        beside: the method whose round of the same target (same parent) it is compared with.
        weights: "parent" (that round's θk) or "dense" (the dense run's θk: non-zero everywhere).
        mask: makes the control's own mask in place of the round's ``ConvergedMask``.
        extra: a callback added after the round's mask and weights.
    """

    beside: str
    weights: str = "parent"
    mask: Callable[[RunSpec, Context], Component] | None = None
    extra: Callable[[Context], Component] | None = None


@dataclass(frozen=True)
class Method:
    """One method of an experiment (the registry's entry).

    Attributes:
        name: as written in ``methods:`` of an experiment config; also the kind of its own runs.
        label: its column in results.md and its line in the plot.
        plan: ``plan(config, schedule, name)``, the method's runs below the dense run (which every
            method has), each with ``methods=[name]`` and the columns it is reported in.
        callbacks: ``callbacks(run, context)``, the pruning callbacks of a run of kind ``name``;
            None when the method builds only runs of other kinds (SLT-MP: slt and mp runs).
        in_paper: one of the paper's six methods or its three controls (what ``METHOD_NAMES``
            and conf/experiments/all_methods.yaml hold); False for a variant it contrasts with.
        named_sparsities: sparsities of the config that name run folders besides the targets,
            ``{"the key": value}``, checked for clashes at two decimals; the runs there are where
            the method starts, not targets it trains (``check_targets_trained``).
        check: refuses a config this method cannot run (ValueError saying what and how to fix).
        also_shows: ``also_shows(run, methods, config)`` with a run's metrics.json, the
            experiment's methods and its config (dicts of experiment.json): rows of another method
            this method's report column shows as well.
        control: for a control, what it runs beside and what it changes.
    """

    name: str
    label: str
    plan: Plan
    callbacks: MakeCallbacks | None = None
    in_paper: bool = True
    named_sparsities: Callable[[Settings], dict[str, float]] = lambda config: {}
    check: Callable[[Settings], None] = lambda config: None
    also_shows: Callable[[dict, list[str], dict], bool] = lambda run, methods, config: False
    control: Control | None = None


# -- plans: the runs a method needs ----------------------------------------------------------------

DENSE = RunSpec("dense", "dense", 0.0)


def rounds(schedule: Schedule, start: RunSpec, kind: str, targets: list[float], method: str, *,
           weights: str = "parent", rewind_step: int | None = None, reported_in: list[str] | None = None) -> list[RunSpec]:
    """Iterative rounds from ``start``: each round's mask from its parent's θT, its weights from
    θ_rewind_step (default: the schedule's k) of its parent (``weights="parent"``) or of the dense
    run (``weights="dense"``); reported in ``method``'s column unless ``reported_in`` says otherwise."""
    parent, out = start.name, []
    step = schedule.rewind_step if rewind_step is None else rewind_step
    for target in targets:
        name = f"{parent}/{tag(kind, target)}"
        out.append(RunSpec(name, kind, target, parent, parent if weights == "parent" else weights, rewind_step=step,
                           methods=[method], reported_in=[method] if reported_in is None else list(reported_in)))
        parent = name
    return out


def mp_run(schedule: Schedule, target: float, method: str, parent: RunSpec | None = None, initial: float = 0.0) -> RunSpec:
    """An MP run to ``target``: from scratch, or from ``parent``'s mask and θk with s0 = ``initial``."""
    name = tag("mp", target) if parent is None else f"{parent.name}/{tag('mp', target)}"
    source = parent.name if parent else None
    return RunSpec(name, "mp", target, source, source, rewind_step=schedule.rewind_step, initial_sparsity=initial,
                   best_after_step=schedule.mp_end_step, methods=[method], reported_in=[method])


def _plan_mp(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    return [mp_run(schedule, target, name) for target in config.targets_of(name)]


def _plan_lt(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    return rounds(schedule, DENSE, name, config.targets_of(name), name, weights="dense", rewind_step=0)


def _plan_rounds(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    """SLT, CLT: rounds rewound to θk of the most recent run."""
    return rounds(schedule, DENSE, name, config.targets_of(name), name)


def _plan_slt_mp(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    switch = config.slt_mp_switch
    tickets = rounds(schedule, DENSE, "slt", _slt_mp_rounds(config), name)
    return tickets + [mp_run(schedule, target, name, parent=tickets[-1], initial=switch)
                      for target in config.targets_of(name) if target > switch]


def _slt_mp_rounds(config: Settings) -> list[float]:
    """SLT-MP's SLT rounds: one-shot to 50 %, then to the switch (paper: 60 %)."""
    return [0.5, config.slt_mp_switch] if config.slt_mp_switch > 0.5 else [config.slt_mp_switch]


def _plan_mp_slt(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    source = mp_run(schedule, config.mp_slt_source, name)
    return [source, *rounds(schedule, source, "slt", [t for t in config.targets_of(name) if t > config.mp_slt_source],
                            name)]


def _plan_mp_lineage(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    """MP to each target, trained for as many steps as the SLT lineage of that target (the dense
    run and the SLT rounds up to it): a ticket's lineage trains several runs, MP one, so this
    row tells "method" from "compute"."""
    chain_targets, out = config.targets_of("slt"), []
    for target in config.targets_of(name):
        runs = 2 + chain_targets.index(target)
        out.append(RunSpec(f"{tag('mp', target)}_{runs}x", "mp", target, rewind_step=schedule.rewind_step,
                           best_after_step=round(schedule.mp_end_step * runs), max_steps=runs * schedule.max_steps,
                           methods=[name], reported_in=[name]))
    return out


def _check_mp_lineage_targets(config: Settings) -> None:
    stray = [t for t in config.targets_of("mp_lineage") if t not in config.targets_of("slt")]
    if stray:
        raise ValueError(f"mp_lineage targets {stray} are not rounds of the SLT chain {config.targets_of('slt')}: "
                         "its runs train as many steps as the SLT lineage of their target; use targets of that chain")


def _plan_slt_dense_k(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    targets = config.targets_of(name)
    first = rounds(schedule, DENSE, "slt", targets[:1], name)  # SLT's own first round: dense θT's mask, dense θk
    return first + rounds(schedule, first[-1], name, targets[1:], name, weights="dense")


def _plan_control(config: Settings, schedule: Schedule, name: str) -> list[RunSpec]:
    """The ``beside`` chain's rounds up to the control's highest target, and the control beside
    each: those rounds are results of ``beside`` (where it is not run itself, the control is
    judged beside them in-part), not rows of the control's own column."""
    control = METHODS[name].control or Control(name)
    chain_targets, targets = config.targets_of(control.beside), config.targets_of(name)
    base = rounds(schedule, DENSE, control.beside, [t for t in chain_targets if t < max(targets)], name,
                  reported_in=[control.beside])
    beside = [RunSpec(f"{parent.name}/{tag(name, target)}", name, target, parent.name,
                      parent.name if control.weights == "parent" else control.weights,
                      rewind_step=schedule.rewind_step, methods=[name], reported_in=[name])
              for parent, target in zip([DENSE, *base], chain_targets) if target in targets]
    return [replace(DENSE, methods=[name], reported_in=[control.beside]), *base, *beside]


# -- callbacks: what a run of each kind trains with ------------------------------------------------


def _dense_callbacks(run: RunSpec, context: Context) -> list[Component]:
    """θ0 for LT and θk for the rounds after it."""
    k = context.schedule.rewind_step
    return [Component.of(WeightRewind, step=0)] + ([Component.of(WeightRewind, step=k)] if k else [])


def _mp_callbacks(run: RunSpec, context: Context) -> list[Component]:
    """The cubic ramp (stretched with a run longer than the schedule's); from a parent: its mask
    (s0) and θk first. Records θk for MP-SLT."""
    schedule, k = context.schedule, context.schedule.rewind_step
    stretch = (run.max_steps or schedule.max_steps) / schedule.max_steps
    mp = Component.of(GradualMagnitudePruning, final_sparsity=run.sparsity, initial_sparsity=run.initial_sparsity,
                      end_step=round(schedule.mp_end_step * stretch),
                      frequency=max(1, round(schedule.mp_frequency * stretch)))
    if run.parent is None:
        return [mp, Component.of(WeightRewind, step=k)]
    parent = context.last_ckpt[run.parent]
    return [Component.of(ConvergedMask, source=parent, sparsity=run.initial_sparsity),
            Component.of(WeightRewind, step=k, source=parent), mp]


def _ticket(extra: Callable[[Context], Component] | None = None,
            mask: Callable[[RunSpec, Context], Component] | None = None) -> MakeCallbacks:
    """The mask of the parent's θT (or ``mask``'s), the weights of ``weights_from``'s θ_rewind_step,
    then ``extra``. ``WeightRewind(step, source=...)`` both starts from the source's θ_step and
    records this run's own, for the rounds after it."""

    def callbacks(run: RunSpec, context: Context) -> list[Component]:
        parent, weights = context.last_ckpt[str(run.parent)], context.last_ckpt[str(run.weights_from)]
        first = mask(run, context) if mask else Component.of(ConvergedMask, source=parent, sparsity=run.sparsity)
        rewind = Component.of(WeightRewind, step=run.rewind_step, source=weights)
        return [first, rewind] + ([extra(context)] if extra else [])

    return callbacks


def _random_mask(run: RunSpec, context: Context) -> Component:
    """The round's per-tensor counts, drawn over the whole tensor."""
    return Component.of(RandomMask, sparsity=run.sparsity, source=context.last_ckpt[str(run.parent)], seed=context.seed)


# -- checks of a config, reports -------------------------------------------------------------------


def _check_slt_mp_targets(config: Settings) -> None:
    """SLT-MP trains SLT to 0.5 and its switch, then MP above the switch: a target below the
    switch that no other method of the experiment trains would be dropped without a word."""
    methods = config.methods
    if any(m not in ("slt_mp", "mp_slt") for m in methods):
        return
    trained, asked = set(), set()
    if "slt_mp" in methods:
        asked |= set(config.targets_of("slt_mp"))
        trained |= set(_slt_mp_rounds(config)) | {t for t in config.targets_of("slt_mp") if t > config.slt_mp_switch}
    if "mp_slt" in methods:
        asked |= set(config.targets_of("mp_slt"))
        trained |= {config.mp_slt_source} | {t for t in config.targets_of("mp_slt") if t > config.mp_slt_source}
    unused = sorted(asked - trained)
    if unused:
        raise ValueError(
            f"targets {unused} are below slt_mp_switch={config.slt_mp_switch}: SLT-MP trains SLT to 0.5 and "
            f"{config.slt_mp_switch}, then MP from that ticket to each target above it, so no run of this "
            "experiment would train them. Remove them from targets, lower slt_mp_switch, or add a method "
            "that trains them (e.g. slt)"
        )


def _check_control_targets(config: Settings) -> None:
    """A control runs beside the round of its target: that round must be in its chain."""
    for method in config.methods:
        control, targets = METHODS[method].control, config.targets_of(method)
        if control and (stray := [t for t in targets if t not in config.targets_of(control.beside)]):
            raise ValueError(
                f"{method}'s targets {targets}: {stray} are not rounds of the {control.beside} chain "
                f"{config.targets_of(control.beside)}, and the control runs beside the {control.beside} round of its "
                f"target; use targets from that chain (method_targets: {{{method}: [...]}})")


def _mp_rows_up_to_the_source(run: dict, methods: list[str], config: dict) -> bool:
    """Paper Table 1: MP-SLT's rows up to the MP source sparsity are the MP column."""
    return "mp" in methods and "mp" in run["reported_in"] and run["sparsity_target"] <= config.get("mp_slt_source", 0.6)


def _control(name: str, label: str, control: Control) -> Method:
    return Method(name, label, _plan_control, _ticket(control.extra, control.mask), check=_check_control_targets,
                  control=control)


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("mp", "MP", _plan_mp, _mp_callbacks),
    Method("lt", "LT", _plan_lt, _ticket()),
    Method("slt", "SLT", _plan_rounds, _ticket()),
    Method("clt", "CLT", _plan_rounds,
           _ticket(lambda context: Component.of(SignOnlyReinit, magnitude=context.schedule.clt_magnitude))),
    Method("slt_mp", "SLT-MP", _plan_slt_mp, check=_check_slt_mp_targets,
           named_sparsities=lambda config: {"slt_mp_switch": config.slt_mp_switch, **(
               {"SLT-MP's first round": 0.5} if config.slt_mp_switch > 0.5 else {})}),
    Method("mp_slt", "MP-SLT", _plan_mp_slt, also_shows=_mp_rows_up_to_the_source,
           named_sparsities=lambda config: {"mp_slt_source": config.mp_slt_source}),
    _control("random_mask", "random mask", Control("slt", weights="dense", mask=_random_mask)),
    _control("random_reinit", "random re-init",
             Control("slt", extra=lambda context: Component.of(RandomReinit, seed=context.seed))),
    _control("random_sign", "random sign",
             Control("clt", extra=lambda context: Component.of(SignOnlyReinit, sign="random", seed=context.seed))),
    Method("slt_dense_k", "SLT (θk of dense)", _plan_slt_dense_k, _ticket(), in_paper=False),
    Method("mp_lineage", "MP (SLT lineage's steps)", _plan_mp_lineage, in_paper=False, check=_check_mp_lineage_targets),
)}


def chains_needed(methods: list[str]) -> set[str]:
    """The methods whose chains ``methods`` build on without naming them (a control's SLT or CLT
    chain, the SLT lineage of ``mp_lineage``): their ``method_targets`` shape these runs too.
    A name the registry does not know needs nothing (the config refuses it with its own error)."""
    controls = {control.beside for m in methods if m in METHODS and (control := METHODS[m].control)}
    return controls | ({"slt"} if "mp_lineage" in methods else set())


# The paper's six methods and its three controls, in the order of its tables.
METHOD_NAMES = tuple(name for name, method in METHODS.items() if method.in_paper)
_KIND_CALLBACKS = {"dense": _dense_callbacks, **{name: m.callbacks for name, m in METHODS.items() if m.callbacks}}


# Where a plan's runs lie does not depend on its steps: the rule below plans with any schedule.
_ANY_SCHEDULE = Schedule(max_steps=100, rewind_step=5, mp_end_step=80, mp_frequency=2, warmup_steps=2)


def check_targets_trained(config: Settings) -> None:
    """The one rule of plans: every configured method trains at least one of its targets.

    Runs at the sparsities the method's own settings fix (``named_sparsities``: MP-SLT's MP
    source, SLT-MP's SLT rounds to its switch) are where it starts, not results of its own: a
    method whose targets all lie there, or nowhere in its plan, would train only those runs and
    report them as its column, with none of the results it was asked for.

    Raises:
        ValueError: naming the method, its targets, the settings that fix its start and the fix.
    """
    for name in config.methods:
        targets = config.targets_of(name)
        fixed = METHODS[name].named_sparsities(config)
        runs = METHODS[name].plan(config, _ANY_SCHEDULE, name)
        reported = {run.sparsity for run in runs if name in run.reported_in and run.kind != "dense"}
        trained = reported - set(fixed.values())
        if trained & set(targets):
            continue
        settings = {key: value for key, value in fixed.items() if hasattr(config, key)}
        if not settings:
            raise ValueError(f"{name} trains none of its targets {targets} (its plan trains {sorted(trained)}); give "
                             f"it targets its plan trains (targets, or method_targets: {{{name}: [...]}})")
        start = max(fixed.values())
        raise ValueError(
            f"{name} trains none of its targets {targets}: it starts from the runs at "
            f"{', '.join(f'{key}={value}' for key, value in settings.items())}, so it would train only those and "
            f"report them as its column. Give it a target above {start} (targets, or method_targets: {{{name}: "
            f"[...]}}), lower {' or '.join(settings)}, or remove {name} from methods")


def build_runs(config: Settings, schedule: Schedule) -> list[RunSpec]:
    """Every run the experiment needs, parents before children, each once: the methods' plans
    merged by run name (a run two methods need is trained once, for both)."""
    merged: dict[str, RunSpec] = {}
    for name in config.methods:
        for run in [replace(DENSE, methods=[name], reported_in=[name]), *METHODS[name].plan(config, schedule, name)]:
            known = merged.setdefault(run.name, replace(run, methods=[], reported_in=[]))
            known.methods += [m for m in run.methods if m not in known.methods]
            known.reported_in += [m for m in run.reported_in if m not in known.reported_in]
    return sorted(merged.values(), key=lambda run: run.name.count("/"))


def run_callbacks(run: RunSpec, last_ckpt: dict[str, str], schedule: Schedule, seed: int) -> list[Component]:
    """The pruning callbacks of ``run``: those of its kind's registry entry.

    Args:
        last_ckpt: run name -> path of its last checkpoint (θT, θk snapshots, mask).
    """
    return _KIND_CALLBACKS[run.kind](run, Context(last_ckpt, schedule, seed))


def label(method: str) -> str:
    """The method's column label; a name the registry no longer has (an old folder) as itself."""
    return METHODS[method].label if method in METHODS else method


def shows(method: str, run: dict, methods: list[str], config: dict) -> bool:
    """Whether ``method``'s report column shows the finished run ``run`` (its metrics.json): the
    one rule of report columns."""
    entry = METHODS.get(method)
    return method in run["reported_in"] or (entry is not None and entry.also_shows(run, methods, config))
