"""Plans without training: an experiment config on the chain 50/80/90/95 % and the runs it builds
(used by the tests of experiments in parts, per-method targets and lineage-length MP)."""

from lightning_slt.experiments import ExperimentConfig, Schedule, build_runs

CHAIN = [0.5, 0.8, 0.9, 0.95]


def _config(**kwargs) -> ExperimentConfig:
    return ExperimentConfig(**{"base": ["b.yaml"], "output_dir": "out/repro", "targets": CHAIN, **kwargs})


def _runs(config: ExperimentConfig, max_steps: int = 800) -> tuple[Schedule, dict]:
    schedule = Schedule.resolve(config, max_steps)
    return schedule, {run.name: run for run in build_runs(config, schedule)}


def method_rows(runs: list, method: str) -> dict:
    """The run reported at each sparsity in ``method``'s column (0 % is the dense run)."""
    return dict(sorted((run.sparsity, run) for run in runs if method in run.reported_in))


def selected_parts(config: ExperimentConfig) -> list[ExperimentConfig]:
    """What ``lightning-slt experiment`` runs: the chosen part, every part in order, or the config itself."""
    if not config.parts:
        return [config]
    return [config.for_part(name) for name in ([config.part] if config.part else config.parts)]
