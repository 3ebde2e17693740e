"""The paper's methods as resumable multi-run chains, with reports.

From Python::

    from lightning_slt.experiments import load_config, run_experiment
    run_experiment(load_config("conf/experiments/slt.yaml"))

From the shell: ``lightning-slt experiment --config conf/experiments/slt.yaml`` and
``lightning-slt report runs/slt``.
"""

from .chains import RunSpec, Schedule
from .config import PAPER_TARGETS, ExperimentConfig
from .methods import METHODS, build_runs
from .report import write_report
from .paths import ExperimentPaths, RunPaths, run_paths
from .runner import load_config, plan, run_experiment

__all__ = [
    "PAPER_TARGETS",
    "METHODS",
    "ExperimentConfig",
    "RunSpec",
    "Schedule",
    "build_runs",
    "load_config",
    "plan",
    "run_experiment",
    "run_paths",
    "ExperimentPaths",
    "RunPaths",
    "write_report",
]
