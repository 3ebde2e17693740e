"""Where everything of an experiment lives, in one place: the runner writes there, reports read there.

Layout::

    <output_dir>/experiment.json            what must not change between invocations (the manifest)
    <output_dir>/parts.json                 an experiment run in parts: their order; each part is
    <output_dir>/<part>/...                   an experiment folder of its own
    <output_dir>/results.{csv,md}, bleu_vs_sparsity.png, claims.md   the reports
    <output_dir>/seed<S>/<run name>/        one folder per run, named by its lineage
        config.yaml                         the run's full LightningCLI config: re-runnable with
                                            ``lightning-slt fit --config config.yaml``
        checkpoints/last.ckpt               θT (the next round's mask), θk snapshots, masks
        checkpoints/best.ckpt               best validation metric at the final sparsity
        mask.pt, theta_k.pt                 the ticket's mask and θk, for other tools
        model.ticket                        best.ckpt as a compact ticket; with W&B, a model artifact
        test/                               hypotheses, references and sacreBLEU metrics of best.ckpt
        metrics.json                        written last: its presence means "finished"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "experiment.lock"
MANIFEST = "experiment.json"


@dataclass(frozen=True)
class RunPaths:
    """Every location of one run."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def mask(self) -> Path:
        return self.root / "mask.pt"

    @property
    def theta_k(self) -> Path:
        return self.root / "theta_k.pt"

    @property
    def ticket(self) -> Path:
        return self.root / "model.ticket"

    @property
    def test(self) -> Path:
        return self.root / "test"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def own_entries(self) -> list[Path]:
        """The run's own files and folders: not the folders of the runs that build on it."""
        own_folders = {self.checkpoints.name, self.test.name, self.logs.name}
        return [path for path in sorted(self.root.iterdir()) if path.is_file() or path.name in own_folders]

    @property
    def hypotheses(self) -> Path:
        return self.test / "hypotheses_test.txt"

    @property
    def references(self) -> Path:
        return self.test / "references_test.txt"


@dataclass(frozen=True)
class ExperimentPaths:
    """Every location of one experiment folder (or one part of an experiment run in parts)."""

    root: Path

    @classmethod
    def of(cls, output_dir: str | Path) -> ExperimentPaths:
        return cls(Path(output_dir))

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def parts(self) -> Path:
        return self.root / "parts.json"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    @property
    def plot(self) -> Path:
        return self.root / "bleu_vs_sparsity.png"

    @property
    def claims(self) -> Path:
        return self.root / "claims.md"

    def part(self, name: str) -> ExperimentPaths:
        return ExperimentPaths(self.root / name)

    def run(self, seed: int, name: str) -> RunPaths:
        return RunPaths(self.root / f"seed{seed}" / name)

    def own_files(self) -> list[Path]:
        """The files this folder's experiment writes into it (manifest, parts order, lock, reports)."""
        return [self.manifest, self.parts, self.lock, self.results_csv, self.results_md, self.plot, self.claims]

    @staticmethod
    def is_own_name(name: str) -> bool:
        """Whether ``name`` in an experiment folder is one of its own files or a seed folder
        (``seed0``): a part, a folder of its own, may not be named so."""
        files = {path.name for path in ExperimentPaths(Path()).own_files()}
        return name in files or re.fullmatch(r"seed\d+", name) is not None

    def all_metrics(self) -> list[Path]:
        """Every finished run's metrics.json under this folder, of any plan."""
        return sorted(self.root.glob("seed*/**/metrics.json"))


def run_paths(output_dir: str | Path, seed: int, run: str) -> RunPaths:
    """The locations of run ``run`` of seed ``seed`` in the experiment folder ``output_dir``."""
    return ExperimentPaths.of(output_dir).run(seed, run)


def experiment_above(path: str | Path) -> Path | None:
    """The experiment folder ``path`` lies inside (the nearest folder above it holding an
    experiment.json), or None."""
    path = Path(path).resolve()
    return next((folder for folder in path.parents if (folder / MANIFEST).is_file()), None)
