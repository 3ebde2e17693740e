"""Every file format of a run, one owner each: torch, numpy and the pruning math only, nothing else of ours.

- ``keys``: every checkpoint key (and the ``WeightRewind`` state-key format).
- ``loading``: ``read_checkpoint``, the one ``torch.load`` of user files (weights only, one error policy).
- ``checkpoint``: ``RunCheckpoint``, the typed run checkpoint, its ``Kind`` and its writers.
- ``sources``: ``load_source``, the registry of readers of foreign formats and our tickets.
- ``matching``: a file's tensor names to a model's.
- ``ticket`` / ``mask_codec``: the ticket file and its compact mask coding.
"""

from . import keys
from .checkpoint import Kind, RunCheckpoint, run_checkpoint
from .loading import read_checkpoint
from .matching import match_masks, match_names, match_partial
from .sources import load_source

__all__ = ["Kind", "RunCheckpoint", "keys", "load_source", "match_masks", "match_names", "match_partial", "read_checkpoint",
           "run_checkpoint"]
