"""Tickets as W&B model artifacts: versioned beside the run that made them, with searchable metadata.

Why: the runs of a pruning chain are compared in W&B; an artifact keeps each round's ticket
there, versioned (``name:v0``, ``v1``, aliases such as ``best``), with metadata a W&B table can
filter on (kind, sparsity, rewind step, sizes) and the file's sha256, so a downloaded ticket can
be checked against the one uploaded (``read_ticket`` checks its inner checksums too). The ticket
is read and verified before anything is logged: a corrupted file is never uploaded.
``WANDB_MODE=offline`` works without network (``wandb sync`` uploads later).
"""

import hashlib
import importlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_slt.artifacts.ticket import FORMAT_VERSION, read_ticket
from lightning_slt.pruning.stats import sparsity_report

if TYPE_CHECKING:
    import wandb

ARTIFACT_TYPE = "model"


def ticket_metadata(ticket_path: str | os.PathLike) -> dict[str, Any]:
    """What an artifact records about a ticket, read from the verified file.

    Keys: ``format``, ``format_version``, ``kind`` ("ticket" or "winning_ticket"), ``sha256``
    (of the whole file), ``bytes`` (the parts' sizes, see ``Ticket``), ``sparsity`` (pruned /
    masked entries), ``pruned``, ``masked``, ``values_dtype``, ``tokenizer_sha256``,
    ``tokenizer_embedded``, ``model_config``, plus the writer's ``extra`` (``rewind_step``,
    ``source_checkpoint``, ``global_step``, ...) where it does not clash with these.

    Raises:
        TicketError: the file is not a readable ticket (names the file and the fault).
    """
    path = Path(ticket_path)
    ticket = read_ticket(path)
    report = sparsity_report(ticket.masks)
    computed = {
        "format": "lightning_slt.ticket",
        "format_version": FORMAT_VERSION,
        "kind": ticket.extra.get("kind", "ticket"),
        "sha256": _sha256(path),
        "bytes": dict(ticket.sizes),
        "sparsity": report["global"],
        "pruned": report["pruned"],
        "masked": report["prunable"],
        "values_dtype": ticket.values_dtype,
        "tokenizer_sha256": ticket.tokenizer_sha256,
        "tokenizer_embedded": ticket.tokenizer_proto is not None,
        "model_config": ticket.model_config,
    }
    return {**ticket.extra, **computed}


def log_ticket_artifact(
    ticket_path: str | os.PathLike,
    run_or_logger: Any,
    name: str | None = None,
    aliases: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    description: str | None = None,
) -> "wandb.Artifact | None":
    """Log a ticket file as a ``wandb.Artifact`` of type "model" to a run; returns the artifact.

    Args:
        run_or_logger: a ``wandb`` Run, or a pytorch_lightning ``WandbLogger`` (its run; on the
            other ranks of a DDP job, where it has none, nothing is logged and None returned).
        name: artifact name; default: the file name without its suffix, characters W&B does
            not allow replaced by "-" (``runs/slt 0.9.ticket`` -> ``slt-0.9``).
        aliases: e.g. ``["best"]``; W&B adds ``latest`` itself.
        metadata: added to ``ticket_metadata``; it may not redefine those keys.
        description: the artifact's description; default names the kind and sparsity.

    Raises:
        TicketError: the file is not a readable ticket (nothing is logged).
        ValueError: `run_or_logger` is neither a Run nor a WandbLogger, or `metadata`
            redefines a key of ``ticket_metadata``.
    """
    import wandb

    path = Path(ticket_path)
    facts = ticket_metadata(path)
    clashes = sorted(set(metadata or {}) & set(facts))
    if clashes:
        raise ValueError(f"metadata may not redefine what the ticket records: {clashes}; use other key names")
    run = _run_of(run_or_logger)  # a WandbLogger starts its run here, once the inputs are known to be good
    if run is None:
        return None
    if description is None:
        description = f"lightning_slt {facts['kind']} at sparsity {facts['sparsity']:.4f}"
        if facts.get("rewind_step") is not None:
            description += f", weights of step {facts['rewind_step']}"
    artifact = wandb.Artifact(name or _default_name(path), type=ARTIFACT_TYPE, description=description,
                              metadata={**facts, **(metadata or {})})
    artifact.add_file(str(path), name=path.name)
    return run.log_artifact(artifact, aliases=list(aliases) if aliases else None)


def _run_of(run_or_logger: Any) -> "wandb.Run | None":
    """The wandb Run behind the argument; None on a DDP rank whose WandbLogger has no run."""
    from wandb.sdk.wandb_run import Run

    if isinstance(run_or_logger, Run):
        return run_or_logger
    for namespace in ("pytorch_lightning", "lightning.pytorch"):  # no WandbLogger without it: do not import one
        if namespace in sys.modules:
            loggers = importlib.import_module(f"{namespace}.loggers")
            if isinstance(run_or_logger, loggers.WandbLogger):
                rank = importlib.import_module(f"{namespace}.utilities").rank_zero_only.rank
                return run_or_logger.experiment if rank == 0 else None
    raise ValueError(
        f"run_or_logger must be a wandb Run (wandb.init()) or a Lightning WandbLogger, got "
        f"{type(run_or_logger).__name__}"
    )


def artifact_name(text: str) -> str:
    """`text` with the characters W&B does not allow in artifact names replaced by "-"."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text) or "ticket"


def _default_name(path: Path) -> str:
    return artifact_name(path.name[: -len(path.suffix)] if path.suffix else path.name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
