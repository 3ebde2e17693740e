"""An experiment: which methods, which sparsities, on which base run, how many seeds, where.

Read from YAML by jsonargparse, so a key or value of the wrong type is a clear error naming it
before any training. Defaults keep the paper's proportions at any run length ``T``
(``max_steps``; the paper: T = 500k):

- learning-rate warm-up w = 2 % of T (10k of 500k); it replaces the base config's
  ``model.warmup_steps``, so a shortened run does not spend a third of itself warming up;
- rewind step k = 5 % of T (25k of 500k): θk is taken after warm-up ends (w ≤ k), and early
  (k ≤ 10 % of T), which is what makes a ticket "stabilized" (Frankle et al. 2019);
- MP's ramp ends at 80 % of T (400k) with Δt = 2 % (10k).

A config that breaks the k rule (k inside warm-up, or k > 10 % of T) is allowed with a warning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lightning_slt.pruning import check_sparsity

from .chains import Schedule
from .methods import METHOD_NAMES, METHODS, chains_needed, check_targets_trained
from .paths import ExperimentPaths, experiment_above

__all__ = ["METHOD_NAMES", "PAPER_TARGETS", "ExperimentConfig", "Part", "Schedule"]
PAPER_TARGETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]
MAX_SEED = 2**32 - 1  # numpy's (and so Lightning's seed_everything's) largest seed


STAGE_PREFIXES = {"valid": ("val/", "val_", "valid/", "valid_", "validation/", "validation_"),
                  "test": ("test/", "test_")}


def metric_name(logged: str, stage: str = "valid") -> str:
    """A logged metric's name without its stage prefix: ``val/acc`` -> ``acc``."""
    for prefix in STAGE_PREFIXES[stage]:
        if logged.startswith(prefix):
            return logged[len(prefix):]
    return logged


@dataclass
class Part:
    """Some methods of an experiment, run as an experiment of their own in ``<output_dir>/<part>``.

    Why: an experiment longer than one sitting of the machine is run part by part; each part
    trains the dense run it needs under the same seed, so all its comparisons are made within
    runs of one machine and one sitting.

    Args:
        methods: the part's methods (names of ``methods.METHODS``).
        dense_seeds: seeds of which this part trains only the dense run (the seed spread).
        seeds: the part's seeds; None = the experiment's.
        method_targets: the part's own targets of some methods (a chain run to 80 % in this
            part and on to 95 % in a later one that ``reuse``\ s it).
        reuse: earlier parts whose finished runs (same name, same seed) this part takes instead
            of training them again: a chain longer than one sitting goes on in the next part
            from where the earlier one stopped (its comparisons are then relative to the dense
            model of the chain, trained in that earlier part).
    """

    methods: list[str]
    dense_seeds: list[int] = field(default_factory=list)
    seeds: list[int] | None = None
    method_targets: dict[str, list[float]] = field(default_factory=dict)
    reuse: list[str] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    """One experiment directory: one or more methods sharing their common runs.

    Args:
        base: LightningCLI config(s) of a dense run (model, data, trainer with ``max_steps``).
        methods: names of ``methods.METHODS``: mp, lt, slt, clt, slt_mp, mp_slt, random_mask,
            random_reinit, random_sign (the paper's, ``METHOD_NAMES``) or slt_dense_k.
        output_dir: the experiment directory; one sub-folder per seed, one per run below it.
        targets: final sparsities of the pruned runs, strictly increasing, each in [0, 1).
        method_targets: a method's own targets where they are not ``targets`` (controls at
            [0.5, 0.9] beside the SLT rounds of a chain over ``targets``: each a member of it).
        base_args: extra LightningCLI arguments for every run, e.g. ``["--trainer.max_steps=400"]``.
        rewind_step: k of SLT/CLT/MP-SLT; None = max(1, round(0.05 * max_steps)).
        mp_end_step: step where MP reaches its final sparsity; None = round(0.8 * max_steps).
        mp_frequency: Δt of MP; None = max(1, round(0.02 * max_steps)).
        warmup_steps: learning-rate warm-up of every run; None = max(1, round(0.02 * max_steps)),
            replacing the base's ``model.warmup_steps``; set it to keep the base's own.
        clt_magnitude: CLT's constant: "fan_avg" (tensor2tensor's init bound sqrt(6/(fan_in+fan_out));
            for the tied embedding sqrt(6/(V+d)), 0.027 at V=8000, d=256, against its N(0, d^-1/2)
            init's 0.0625: the paper leaves this open) or "std" (each tensor's own std, Zhou et al. 2019).
        slt_mp_switch: SLT-MP's SLT sparsity before switching to MP (paper 0.6; 0.5 is one-shot).
        mp_slt_source: the MP sparsity whose mask MP-SLT continues from (paper 0.6).
        seeds: one full set of runs per seed; reports give mean ± sd.
        dense_seeds: seeds of which only the dense run is trained: the seed spread that
            ``report --claims`` judges differences against (with ``seeds``, at least three).
        parts: the experiment split into parts run one by one (``Part``), by name; with parts,
            ``methods`` may stay empty (each part runs its own; a method listed here must be in one).
        part: the part to run (``--part=NAME``); None with ``parts`` runs them all in order.
        pretrained: weights every chain starts from instead of a random init (a Lightning
            checkpoint, a plain ``state_dict`` file, or a Hugging Face ``save_pretrained`` folder):
            the dense run and MP fine-tune them, LT rounds rewind to them (θ0), SLT rounds to θk
            of the most recent run as always.
        reuse: experiment folders whose finished runs (same name, same seed, same base config
            and schedule) are taken instead of trained again, their files hard-linked (copied
            across file systems) into this one: an experiment continued from another.
        monitor: the validation metric that picks each run's best checkpoint and, with its stage
            prefix (``val/``, ``val_``) dropped, the test metric that heads the report (``val/bleu``
            -> ``bleu``, ``val/acc`` -> test ``acc``); logged by the module.
        mode: ``max`` (BLEU, accuracy) or ``min`` (a loss, an error rate) for ``monitor``.
        wandb: log every run with WandbLogger (``WANDB_MODE=offline`` works without network).
        wandb_project: W&B project; runs are grouped per experiment, ``job_type`` = method.
        name: experiment name (W&B group); default: the output folder's name.
    """

    base: list[str]
    output_dir: str
    methods: list[str] = field(default_factory=list)
    targets: list[float] = field(default_factory=lambda: list(PAPER_TARGETS))
    method_targets: dict[str, list[float]] = field(default_factory=dict)
    base_args: list[str] = field(default_factory=list)
    rewind_step: int | None = None
    mp_end_step: int | None = None
    mp_frequency: int | None = None
    warmup_steps: int | None = None
    clt_magnitude: str = "fan_avg"
    slt_mp_switch: float = 0.6
    mp_slt_source: float = 0.6
    seeds: list[int] = field(default_factory=lambda: [0])
    dense_seeds: list[int] = field(default_factory=list)
    parts: dict[str, Part] = field(default_factory=dict)
    part: str | None = None
    pretrained: str | None = None
    reuse: list[str] = field(default_factory=list)
    monitor: str = "val/bleu"
    mode: str = "max"
    wandb: bool = False
    wandb_project: str = "lightning_slt"
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.base, str):
            self.base = [self.base]
        self.parts = {name: part if isinstance(part, Part) else Part(**part) for name, part in self.parts.items()}
        if not self.base:
            raise ValueError("base is empty; give the LightningCLI config(s) of the dense run, e.g. "
                             "base: [conf/multi30k_cpu.yaml]")
        self._check_output_dir()
        if self.parts:
            self._check_parts()
            return
        if self.part is not None:
            raise ValueError(f"part={self.part!r} but this experiment has no parts; remove --part or add parts:")
        if not self.methods:
            raise ValueError(f"methods is empty; name the methods to run, e.g. methods: [slt] "
                             f"(known: {', '.join(METHODS)})")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known methods: {', '.join(METHODS)}")
        twice = list(dict.fromkeys(m for m in self.methods if self.methods.count(m) > 1))
        if twice:
            raise ValueError(f"methods lists {', '.join(map(repr, twice))} more than once; name each method once "
                             "(its column would be shown twice, its rows counted twice as if they were two seeds)")
        if not self.targets:
            raise ValueError("targets is empty; give the final sparsities of the pruned runs, e.g. [0.5, 0.6, 0.8]")
        for i, target in enumerate(self.targets):
            check_sparsity(target, f"targets[{i}]")
        if any(b <= a for a, b in zip(self.targets, self.targets[1:])):
            raise ValueError(f"targets must be strictly increasing (masks are nested round after round), got {self.targets}")
        check_sparsity(self.slt_mp_switch, "slt_mp_switch")
        check_sparsity(self.mp_slt_source, "mp_slt_source")
        self._check_method_targets()
        self._check_run_names()
        for method in self._methods():
            method.check(self)
        check_targets_trained(self)
        if self.pretrained is not None and not Path(self.pretrained).exists():
            raise FileNotFoundError(f"pretrained {self.pretrained!r} does not exist (relative paths are read from "
                                    f"{Path.cwd()}); give a checkpoint, a state_dict file or a save_pretrained folder")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min' (how {self.monitor!r} improves), got {self.mode!r}")
        if not self.monitor:
            raise ValueError("monitor is empty; name the validation metric your module logs, e.g. val/acc")
        if self.clt_magnitude not in ("fan_avg", "std"):
            raise ValueError(f"clt_magnitude must be 'fan_avg' (the paper's) or 'std', got {self.clt_magnitude!r}")
        for key in ("rewind_step", "mp_end_step", "mp_frequency", "warmup_steps"):
            value = getattr(self, key)
            if value is not None and value < (0 if key in ("rewind_step", "warmup_steps") else 1):
                raise ValueError(f"{key} must be a positive number of steps, got {value}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        for key in ("seeds", "dense_seeds"):
            for i, seed in enumerate(getattr(self, key)):
                if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
                    raise ValueError(f"{key}[{i}] = {seed!r} is not a seed: seeds are integers from 0 to {MAX_SEED} "
                                     "(what Lightning's seed_everything accepts; it would refuse this one at that "
                                     "seed's first run, after the seeds before it trained)")
        if len(set(self.dense_seeds)) != len(self.dense_seeds) or set(self.dense_seeds) & set(self.seeds):
            raise ValueError(f"dense_seeds must be distinct integers not in seeds {self.seeds}, got {self.dense_seeds}")

    def targets_of(self, method: str) -> list[float]:
        """The final sparsities of ``method``'s runs: its ``method_targets`` entry, else ``targets``."""
        return list(self.method_targets.get(method, self.targets))

    def _check_method_targets(self) -> None:
        allowed = set(self.methods) | chains_needed(self.methods)
        for method, targets in self.method_targets.items():
            if method not in allowed:
                raise ValueError(f"method_targets names {method!r}, which is not among methods {self.methods} (nor a "
                                 "chain they build on); remove the entry or add the method")
            if not targets:
                raise ValueError(f"method_targets[{method}] is empty; remove the entry to use targets {self.targets}")
            for i, target in enumerate(targets):
                check_sparsity(target, f"method_targets[{method}][{i}]")
            if any(b <= a for a, b in zip(targets, targets[1:])):
                raise ValueError(f"method_targets[{method}] must be strictly increasing, got {targets}")

    def _check_output_dir(self) -> None:
        """A folder the experiment can own: not a file, not among another experiment's runs, and no
        folder where it writes one of its own files (the lock first, the report last, after
        every run trained)."""
        if not self.output_dir:
            raise ValueError("output_dir is empty; give the experiment's folder, e.g. output_dir: runs/experiments/slt")
        folder = ExperimentPaths.of(self.output_dir)
        if folder.root.is_file():
            raise ValueError(f"output_dir {folder.root} is a file; give a folder (a new one, or an experiment folder "
                             "of an earlier invocation)")
        above = experiment_above(folder.root)
        if above is not None and ExperimentPaths.is_own_name(folder.root.resolve().relative_to(above).parts[0]):
            raise ValueError(f"output_dir {folder.root} is inside the experiment folder {above}, among its runs (it "
                             f"holds {folder.manifest.name}): the runs of one would be found as the other's, and "
                             "deleting or re-running one would touch the other; choose a folder outside it")
        for path in folder.own_files():
            if path.is_dir():
                raise ValueError(f"{path} is a folder, but the experiment writes its file {path.name} there; move it "
                                 "away (or choose another output_dir)")

    def _check_parts(self) -> None:
        """Every part as the experiment it will be: all of them checked before any trains."""
        if self.part is not None and self.part not in self.parts:
            raise ValueError(f"part={self.part!r} is not a part of this experiment; its parts: {', '.join(self.parts)}")
        everything = [m for part in self.parts.values() for m in part.methods]
        stray = [m for m in self.methods if m not in everything]
        if stray:
            raise ValueError(f"methods {stray} are in no part; with parts, each method is run by the parts naming it")
        if self.dense_seeds:
            raise ValueError("with parts, dense_seeds belong to a part (parts: {name: {dense_seeds: [1, 2]}})")
        for name in self.parts:  # first: an unknown method is named by its part's own error
            self.for_part(name)
        used = set(everything) | chains_needed(everything)
        unused = [m for m in self.method_targets if m not in used]
        if unused:
            raise ValueError(f"method_targets names {unused}, which no part runs (nor a chain a part builds on); "
                             "remove the entries or add the methods to a part")

    def for_part(self, name: str) -> ExperimentConfig:
        """Part ``name`` as an experiment of its own, in ``<output_dir>/<name>``."""
        part = self.parts[name]
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"part name {name!r} is not a folder name; use letters, digits, '_' or '-'")
        if ExperimentPaths.is_own_name(name):
            raise ValueError(f"part name {name!r} is that of a file or seed folder the experiment folder "
                             f"{self.output_dir} holds itself (experiment.json, parts.json, results.md, seed0, ...); "
                             "rename the part")
        order = list(self.parts)
        for earlier in part.reuse:
            if earlier not in self.parts or order.index(earlier) >= order.index(name):
                raise ValueError(f"part {name!r}: reuse names {earlier!r}, which is not a part before it "
                                 f"(the parts, in order: {', '.join(order)})")
        needed = {*part.methods, *chains_needed(part.methods)}
        try:
            return replace(self, methods=list(part.methods), dense_seeds=list(part.dense_seeds), parts={}, part=None,
                           seeds=list(part.seeds) if part.seeds is not None else list(self.seeds),
                           method_targets={**{m: t for m, t in self.method_targets.items() if m in needed},
                                           **part.method_targets},
                           reuse=[*self.reuse, *(str(Path(self.output_dir) / earlier) for earlier in part.reuse)],
                           output_dir=str(Path(self.output_dir) / name), name=f"{self.experiment_name}-{name}")
        except ValueError as error:
            raise ValueError(f"part {name!r}: {error}") from None

    def _check_run_names(self) -> None:
        """Runs are named by sparsity at two decimals (``slt_0.90``): two different sparsities of
        one name would be one folder, and the second would silently never be trained."""
        named = {f"targets[{i}]": t for i, t in enumerate(self.targets)}
        named.update({f"method_targets[{m}][{i}]": t for m, ts in self.method_targets.items() for i, t in enumerate(ts)})
        for method in self._methods():
            named.update(method.named_sparsities(self))
        seen: dict[str, tuple[str, float]] = {}
        for key, value in named.items():
            name = f"{value:.2f}"
            if name in seen and seen[name][1] != value:
                other, first = seen[name]
                raise ValueError(
                    f"{other} = {first} and {key} = {value} would both be run folders named {name} (sparsities "
                    "are named at two decimals), so one of them would never be trained; use sparsities that "
                    "differ within two decimals"
                )
            seen.setdefault(name, (key, value))

    def _methods(self) -> list:
        """The registry entries of this experiment, in the registry's order (one order of checks)."""
        return [method for name, method in METHODS.items() if name in self.methods]

    @property
    def metric(self) -> str:
        """The headline metric's name in metrics.json's ``valid`` and ``test``: ``monitor`` without
        its stage prefix."""
        return metric_name(self.monitor)

    @property
    def experiment_name(self) -> str:
        return self.name or Path(self.output_dir).name

    def to_dict(self) -> dict:
        return asdict(self)
