"""Kept so that ``class_path: lightning_slt.experiments.checkpointing.X`` in the configs runs have
already written (every experiment run's ``config.yaml``) keeps resolving; the classes live in
``lightning_slt.checkpointing``, below ``launch``, which installs them."""

from lightning_slt.checkpointing import AtomicCheckpointIO, BestAfterStep, use_atomic_checkpoints

__all__ = ["AtomicCheckpointIO", "BestAfterStep", "use_atomic_checkpoints"]
