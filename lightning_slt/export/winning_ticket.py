"""The winning ticket θk ⊙ m of a pruning run as a ticket file, the start of the next round.

Why: an SLT round (Brix et al. §3.3) starts from the previous run's mask m applied to its
weights rewound to step k. Both sit in that run's Lightning checkpoint (``RunCheckpoint.masks``
and ``.snapshots[k]``, the ``WeightRewind`` callback state), beside θT,
optimizer state and every other snapshot. A winning ticket keeps only θk ⊙ m and m, in the
ordinary, checksummed ticket format: a few percent of the checkpoint at high sparsity, and a
file that ``WeightRewind(step=k, source=...)`` plus ``ConvergedMask(..., sparsity=None)`` turn
back into the same start, bit for bit. The mask is stored explicitly, since θk may be exactly
zero where m keeps it. The header's ``extra`` says ``kind: "winning_ticket"`` and
``rewind_step: k``; readers tell it from a ticket of θT by that, and ``load_ticket`` (so
``translate`` and the CTranslate2 export too) warns that it is the start of a round, not a trained
model.
"""

import os
from typing import Any

from torch import Tensor

from lightning_slt.export.checkpoint import (
    checkpoint_masks,
    checkpoint_tensors,
    read_module_checkpoint,
    write_module_ticket,
    zero_pruned,
)
from lightning_slt.artifacts import keys, run_checkpoint
from lightning_slt.artifacts.keys import WINNING_TICKET_KIND
from lightning_slt.artifacts.ticket import storage_key


def export_winning_ticket(
    ckpt_path: str | os.PathLike,
    out_path: str | os.PathLike,
    step: int | None = None,
    values_dtype: str = "float32",
    masks: dict[str, Tensor] | None = None,
    embed_tokenizer: bool = True,
) -> dict[str, int]:
    """Write θk ⊙ m of a TranslationModule checkpoint as a ticket; returns its sizes (see ``Ticket``).

    θk is the snapshot ``WeightRewind(step=k)`` recorded in that run (parameters; buffers come
    from the checkpoint's state_dict). m is found as in ``export_checkpoint``: the `masks`
    argument, the masks the pruning callbacks stored, else the exact zeros of θT. Pruned
    entries are +0.0; kept ones are θk's bits. ``extra`` records ``kind``, ``rewind_step``,
    ``recorded_steps``, ``source_checkpoint``, ``sparsity`` (pruned / masked entries),
    ``masks_from``, the checkpoint's ``global_step`` and ``epoch``.

    Args:
        step: k; None picks the only step the checkpoint recorded.
        values_dtype: only "float32": the ticket restarts training from θk, and rounded values
            would start another experiment than the run's own rewind.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: `values_dtype` is not "float32" or `step` not a step count (both before
            the checkpoint is read); not a TranslationModule checkpoint; no θk recorded (the message says how to
            record one); `step` missing or not recorded (lists the recorded steps); no mask; a
            snapshot or mask that does not fit the checkpoint's tensors.
    """
    if values_dtype != "float32":
        raise ValueError(
            f"a winning ticket stores float32 values so that a run rewound to it starts from θk bit for bit; got "
            f"values_dtype={values_dtype!r}. Drop --values (a compact fp16 file of the converged weights is "
            "`lightning-slt export` without --winning-ticket)"
        )
    _check_step(step)
    checkpoint = read_module_checkpoint(ckpt_path)
    step, snapshot = pick_snapshot(ckpt_path, checkpoint, step)
    converged = checkpoint_tensors(checkpoint)
    masks, masks_from = checkpoint_masks(checkpoint, converged, masks)
    if not masks:
        raise ValueError(
            f"{ckpt_path} has no mask: no masks stored by the pruning callbacks and no zero weights; a winning "
            "ticket is θk ⊙ m of a pruned run (ConvergedMask or GradualMagnitudePruning); for the dense weights "
            "use `lightning-slt export` without --winning-ticket"
        )
    theta_k = zero_pruned(_with_snapshot(ckpt_path, converged, snapshot, step), masks)
    extra: dict[str, Any] = {
        keys.EXTRA_KIND: WINNING_TICKET_KIND,
        keys.EXTRA_REWIND_STEP: step,
        "recorded_steps": sorted(recorded_snapshots(checkpoint)),
        "masks_from": masks_from,
    }
    return write_module_ticket(out_path, ckpt_path, checkpoint, theta_k, masks, extra, values_dtype, embed_tokenizer)


def recorded_snapshots(checkpoint: dict[str, Any]) -> dict[int, dict[str, Tensor]]:
    """{k: θk} for every step a ``WeightRewind`` of that run had recorded when it was saved."""
    return run_checkpoint(checkpoint).snapshots


def _check_step(step: int | None) -> None:
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ValueError(f"step must be a non-negative number of optimizer steps or None, got {step!r}")


def pick_snapshot(
    ckpt_path: str | os.PathLike, checkpoint: dict[str, Any], step: int | None
) -> tuple[int, dict[str, Tensor]]:
    """(k, θk): the snapshot of `step`, or the only one recorded when `step` is None.

    Raises:
        ValueError: nothing recorded (says how to record θk), several recorded and `step` is
            None, or `step` not among them (both list the recorded steps).
    """
    _check_step(step)
    recorded = recorded_snapshots(checkpoint)
    if not recorded:
        pending = ", ".join(f"WeightRewind(step={k})" for k in run_checkpoint(checkpoint).rewind_steps)
        why = (f"{pending} had not reached its step when this checkpoint was saved (global_step "
               f"{checkpoint.get('global_step')})" if pending else "the run had no WeightRewind callback")
        raise ValueError(
            f"{ckpt_path} holds no θk: {why}; train the run with WeightRewind(step=k) (e.g. "
            "conf/pruning/record_rewind.yaml) and export a checkpoint saved after step k"
        )
    if step is None:
        if len(recorded) > 1:
            raise ValueError(
                f"{ckpt_path} recorded θk at steps {sorted(recorded)}; choose one with step= (--step)"
            )
        step = next(iter(recorded))
    if step not in recorded:
        raise ValueError(
            f"{ckpt_path} has no θ_{step}: it recorded steps {sorted(recorded)}; pass one of them as step= (--step)"
        )
    return step, recorded[step]


def _with_snapshot(
    ckpt_path: str | os.PathLike, converged: dict[str, Tensor], snapshot: dict[str, Tensor], step: int
) -> dict[str, Tensor]:
    """The checkpoint's state_dict with every parameter replaced by its θk value.

    The snapshot is keyed by ``named_parameters()``, which lists a tied weight once: its twin
    in the state_dict (same storage in the checkpoint) takes the same θk tensor, so the ticket
    stores it once. Buffers are not snapshotted; they keep the checkpoint's values.
    """
    unknown = [name for name in snapshot if name not in converged]
    if unknown:
        raise ValueError(
            f"{ckpt_path}: θ_{step} has tensors the checkpoint's state_dict lacks: {unknown[:5]}; "
            "the snapshot was recorded from another model"
        )
    for name, value in snapshot.items():
        if tuple(value.shape) != tuple(converged[name].shape):
            raise ValueError(
                f"{ckpt_path}: θ_{step}[{name!r}] has shape {tuple(value.shape)}, the state_dict's is "
                f"{tuple(converged[name].shape)}; the snapshot was recorded from another model"
            )
    twins = {storage_key(converged[name]): name for name in snapshot}
    twins.pop(None, None)  # empty tensors have no storage identity
    out = {}
    for name, tensor in converged.items():
        source = name if name in snapshot else twins.get(storage_key(tensor))
        out[name] = snapshot[source] if source is not None else tensor
    return out
