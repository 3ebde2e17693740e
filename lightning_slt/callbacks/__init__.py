"""Lightning callbacks, one per pruning strategy, thin adapters over ``lightning_slt.pruning``."""

from .base import PruningCallback, PruningSession, Role, session_of
from .converged_mask import ConvergedMask
from .gradual import GradualMagnitudePruning
from .pretrained import PretrainedStart
from .random_mask import RandomMask
from .reinit import RandomReinit, SignOnlyReinit
from .sparsity_monitor import SparsityMonitor
from .time_budget import TrainTimeBudget
from .weight_rewind import WeightRewind

__all__ = [
    "ConvergedMask",
    "GradualMagnitudePruning",
    "PretrainedStart",
    "PruningCallback",
    "PruningSession",
    "RandomMask",
    "RandomReinit",
    "Role",
    "SignOnlyReinit",
    "SparsityMonitor",
    "TrainTimeBudget",
    "WeightRewind",
    "session_of",
]
