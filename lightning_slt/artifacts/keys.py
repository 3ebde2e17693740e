"""Every key of a run's checkpoint, in one place: writers and readers import them from here.

A Lightning checkpoint of a ``TranslationModule`` run is a dict. Lightning owns ``state_dict``,
``hyper_parameters``, ``global_step``, ``epoch`` and ``callbacks`` (one state per stateful
callback, keyed by its ``state_key``); we add the pruning state (``STATE_KEY``), the
tokenizer bytes and the RNG states. Tickets (``lightning-slt export``) say what they hold in
their header's ``extra`` (``EXTRA_KIND``, ``EXTRA_REWIND_STEP``).
"""

from __future__ import annotations

import re

# Lightning's own keys.
STATE_DICT_KEY = "state_dict"
HPARAMS_KEY = "hyper_parameters"
GLOBAL_STEP_KEY = "global_step"
EPOCH_KEY = "epoch"
CALLBACKS_KEY = "callbacks"  # {callback.state_key: callback.state_dict()}

# Ours, top level.
STATE_KEY = "lightning_slt"  # the pruning session: {VERSION, MASKS, PRUNING_CALLBACKS, TICKET}
TOKENIZER_KEY = "tokenizer_model_proto"  # uint8 tensor of the sentencepiece model bytes
RNG_KEY = "rng_states"  # dict from ``model.module.rng_states()``

# Inside checkpoint[STATE_KEY].
STATE_FORMAT_VERSION = 1  # written with every state; a reader refuses a newer one
VERSION = "version"
MASKS = "masks"  # {parameter name: bool tensor, True = kept}
PRUNING_CALLBACKS = "callbacks"  # [{"class": ..., settings}] of the fit's pruning callbacks
TICKET = "ticket"  # how the ticket was assembled: {"assembled_by", "kept", "kept_zero"}

# The WeightRewind callback state, under checkpoint[CALLBACKS_KEY][rewind_state_key(k)].
REWIND_STEP = "step"
REWIND_SNAPSHOT = "snapshot"  # θ_step (named_parameters, CPU), None before step k
REWIND_OPTIMIZER = "optimizer"
REWIND_SCHEDULERS = "lr_schedulers"

# A ticket header's extra: what the ticket holds, and for a winning ticket its k.
EXTRA_KIND = "kind"
EXTRA_REWIND_STEP = "rewind_step"
TICKET_KIND = "ticket"  # θT and m
WINNING_TICKET_KIND = "winning_ticket"  # θk ⊙ m and m

_REWIND_KEY = re.compile(r"WeightRewind\{'step': (\d+)\}")


def rewind_state_key(step: int) -> str:
    """``WeightRewind(step=k).state_key``: Lightning's ``_generate_state_key(step=k)``, class name + repr of the kwargs."""
    return f"WeightRewind{ {REWIND_STEP: int(step)}!r}"


def rewind_step_of(key: object) -> int | None:
    """k of a ``rewind_state_key(k)``; None for any other callback's state key."""
    match = _REWIND_KEY.fullmatch(str(key))
    return int(match.group(1)) if match else None
