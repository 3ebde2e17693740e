"""Pure-torch pruning core: no Lightning, no model of ours; works on any ``nn.Module``.

Functions take dicts of tensors keyed by parameter name and return new dicts; only names
ending in ``_`` mutate anything.
"""

from .masking import ParameterMasks
from .masks import (
    Masks,
    check_keeps_entries,
    check_masks,
    check_nested_target,
    check_scope,
    check_sparsity,
    magnitude_masks,
    masks_from_zeros,
    random_masks,
    random_masks_like,
    targets_below,
)
from .reinit import fan_avg_bound, initialiser_values, random_init_values, sign_only_values
from .schedule import check_schedule, cubic_sparsity, is_pruning_step
from .selection import prunable_parameters
from .stats import kept_zeros, mask_jaccard, sign_agreement, sparsity_report

__all__ = [
    "Masks",
    "ParameterMasks",
    "check_keeps_entries",
    "check_masks",
    "check_nested_target",
    "check_scope",
    "check_schedule",
    "check_sparsity",
    "cubic_sparsity",
    "fan_avg_bound",
    "initialiser_values",
    "is_pruning_step",
    "kept_zeros",
    "magnitude_masks",
    "mask_jaccard",
    "masks_from_zeros",
    "prunable_parameters",
    "random_init_values",
    "random_masks",
    "random_masks_like",
    "sign_agreement",
    "sign_only_values",
    "sparsity_report",
    "targets_below",
]
