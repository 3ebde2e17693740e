"""Running an experiment: every run of every chain, resumable, with one folder per run.

The folder layout is ``paths.ExperimentPaths`` and ``paths.RunPaths``.

Re-running the same command skips finished runs and resumes a killed one from its
``last.ckpt``; a run's wall time is every sitting's (the training time Lightning's Timer keeps in
its checkpoints). A changed base config or schedule in an existing directory is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import zlib
from contextlib import nullcontext
from itertools import zip_longest
from pathlib import Path
from typing import Any

import torch
import yaml

from lightning_slt._lightning import ModelCheckpoint, Timer, qualified
from lightning_slt._runtime import cpu_description
from lightning_slt.artifacts import read_checkpoint, run_checkpoint
from lightning_slt.artifacts.ticket import storage_key
from lightning_slt.atomic import is_temporary, read_json, write_json, write_text, write_torch
from lightning_slt.callbacks import PretrainedStart, SparsityMonitor
from lightning_slt.checkpointing import BestAfterStep
from lightning_slt.export.checkpoint import export_checkpoint
from lightning_slt.launch import Component, RunConfig, build, class_of, lightning_base, model_arguments, parse_base
from lightning_slt.model.module import TranslationModule

from .chains import RunSpec, Schedule
from .config import ExperimentConfig, metric_name
from .lock import describe_stale, experiment_lock
from .methods import build_runs, run_callbacks
from .parallel import Job, check_parallel, train_side_by_side
from .paths import LOCK_FILE, ExperimentPaths, RunPaths, run_paths

log = logging.getLogger(__name__)


def _parse_base(config: ExperimentConfig) -> dict:
    """The base run's fully resolved config, validated by LightningCLI: parsed once per experiment.

    Keys sorted (yaml's default order): the order every run's config.yaml has been written in.
    """
    args = [arg for path in config.base for arg in ("--config", str(_existing(path)))] + list(config.base_args)
    # parse_base gives the precision the runs train in on this machine, so every run's config.yaml
    # and the manifest hold it (a folder of bf16 runs is not continued in fp32, or back)
    return yaml.safe_load(yaml.safe_dump(parse_base(args)))


def _existing(path: str) -> Path:
    if not Path(path).is_file():
        raise FileNotFoundError(f"base config {path!r} does not exist (relative paths are read from {Path.cwd()})")
    return Path(path)


def plan(config: ExperimentConfig) -> tuple[dict, Schedule, list[RunSpec]]:
    """Parse and check everything an experiment needs, before any training."""
    if config.parts:
        raise ValueError(f"{config.experiment_name} is run in parts ({', '.join(config.parts)}): plan each part "
                         "(config.for_part(name)), or run it with --part=NAME")
    base = _parse_base(config)
    if is_own_module(base):
        check_can_run(base, config.monitor)
    schedule = Schedule.resolve(config, int(base["trainer"].get("max_steps") or -1),
                                module_warmup="warmup_steps" in model_arguments(base))
    for message in schedule.warnings():
        log.warning(f"experiment {config.experiment_name}: {message}")
    return base, schedule, build_runs(config, schedule)


def is_own_module(base: dict) -> bool:
    """Whether the base config's module is the user's (given by ``class_path``), not ours."""
    return "class_path" in (base.get("model") or {})


def check_can_run(base: dict, monitor: str) -> None:
    """Refuse, before any training, a user's module or data module without what every run does:
    train, validate (the best checkpoint by ``monitor``) and test."""
    def load(group: str) -> type | None:
        entry = base.get(group)
        return class_of(entry["class_path"]) if isinstance(entry, dict) and "class_path" in entry else None

    def defines(type_: type | None, hook: str) -> bool:
        """Whether ``type_`` overrides ``hook`` of its Lightning base (of whichever namespace)."""
        return type_ is not None and getattr(type_, hook, None) is not getattr(lightning_base(type_), hook, None)

    module, data = load("model"), load("data")
    missing = [hook for hook in ("training_step", "validation_step", "test_step") if not defines(module, hook)]
    missing += [loader for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
                if not defines(data, loader) and not defines(module, loader)]
    if missing:
        where = f"{base['model']['class_path']}" + (f" / {base['data']['class_path']}" if data else "")
        raise ValueError(
            f"{where} defines no {', '.join(missing)}: every run of an experiment trains, validates (its best "
            f"checkpoint by {monitor!r}) and tests; add them to the module or its data module"
        )


def _manifest(config: ExperimentConfig, base: dict, schedule: Schedule) -> dict:
    """What defines the runs' contents: runs of the same name must mean the same thing."""
    # hashed without its nulls: every key is present in `base` (the parser fills defaults), so
    # this tells the same settings apart, and keeps the digest of folders written when the
    # base was dumped with skip_none=True
    digest = hashlib.sha256(yaml.safe_dump(_without_none(base), sort_keys=True).encode()).hexdigest()
    manifest = {"base_config_sha256": digest, "schedule": schedule.__dict__, "base_args": list(config.base_args)}
    if config.pretrained:  # only when set: folders written before it existed keep their manifest
        manifest["pretrained"] = str(Path(config.pretrained).resolve())
    return manifest


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def _check_manifest(output_dir: Path, manifest: dict) -> None:
    path = ExperimentPaths(output_dir).manifest
    if path.exists():
        try:
            saved = read_json(path)
        except ValueError as err:
            raise ValueError(
                f"{err}. It records the settings the runs in {output_dir} were trained with, so they cannot be "
                "checked against this config: restore the file from a backup, or choose another output_dir"
            ) from None
        changed = [key for key in manifest if saved.get(key) != manifest[key]]
        if changed:
            details = "; ".join(f"{k}: was {saved.get(k)!r}, now {manifest[k]!r}" for k in changed)
            raise ValueError(
                f"{output_dir} holds a different experiment ({details}). Runs there were trained with "
                "other settings and would be mixed with these: choose another output_dir or delete that folder"
            )
    elif output_dir.exists() and any(p.name != LOCK_FILE and not is_temporary(p.name) for p in output_dir.iterdir()):
        # the lock and a manifest being written: another process is starting this folder (its lock decides)
        raise ValueError(f"{output_dir} is not empty and holds no {path.name}: it is not an experiment folder of ours")


def run_experiment(config: ExperimentConfig | str | os.PathLike, parallel: int = 1) -> Path:
    """Train every run of the experiment that is not finished yet, then write the report.

    Args:
        config: an ExperimentConfig, or the path of an experiment YAML.
        parallel: runs trained at once, each in a process of its own (``parallel.py``); runs
            that build on others wait for them.

    Returns the experiment directory. Safe to call again after a crash or with more methods
    or seeds: finished runs are skipped, killed runs resume from their last checkpoint. Under
    a DDP launcher that starts one process per rank, every rank walks the same chain (decisions
    come from files that rank 0 writes before the ranks leave a run together); only rank 0
    writes the experiment's files.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    check_parallel(parallel)
    if parallel > 1 and not (is_rank_zero() and "WORLD_SIZE" not in os.environ):
        raise ValueError("--parallel trains runs in processes of their own; under a distributed launcher (DDP, "
                         "FSDP2: one process per rank) run the experiment without it")
    if config.parts:  # every part planned and its folder checked before any trains
        folder = ExperimentPaths.of(config.output_dir)
        if folder.manifest.is_file():
            raise ValueError(f"{config.output_dir} holds a single experiment ({folder.manifest.name}), not the parts of one: "
                             "choose another output_dir for the experiment in parts")
        planned = {}
        for name in config.parts:
            part = config.for_part(name)
            planned[name] = (part, *plan(part))
            _check_manifest(Path(part.output_dir), _manifest(*planned[name][:3]))
            _check_reused(part, _manifest(*planned[name][:3]), folders=config.reuse)  # the parts' own: when each runs
        if is_rank_zero():  # the parts' order, for the joint report
            write_json(folder.parts, {"parts": list(config.parts), "config": config.to_dict()})
        for name in [config.part] if config.part else config.parts:
            _run_planned(*planned[name], parallel=parallel)
        if is_rank_zero() and all(_finished(part) for part, *_ in planned.values()):
            from .report import write_report

            write_report(config.output_dir)  # the parts' joint table, once the last of them is done
        return Path(planned[config.part][0].output_dir) if config.part else Path(config.output_dir)
    return _run_planned(config, *plan(config), parallel=parallel)


def _run_planned(config: ExperimentConfig, base: dict, schedule: Schedule, runs: list[RunSpec],
                 parallel: int = 1) -> Path:
    """``run_experiment`` of one experiment (or part) whose plan is made."""
    output_dir = Path(config.output_dir)
    manifest = _manifest(config, base, schedule)
    _check_manifest(output_dir, manifest)  # before the lock: a refused folder gets no lock file
    _check_reused(config, manifest)
    with experiment_lock(output_dir) if is_rank_zero() else nullcontext() as stale:
        if stale:
            log.warning(f"{output_dir}: {describe_stale(stale)}")
        _check_manifest(output_dir, manifest)  # again: another process may have started it meanwhile
        if is_rank_zero():  # "runs": this plan's runs, the only ones its report shows
            write_json(ExperimentPaths(output_dir).manifest, {**manifest, "config": config.to_dict(), "runs": [r.name for r in runs]})
        if parallel == 1:
            for seed in [*config.seeds, *config.dense_seeds]:
                last_ckpt = _last_checkpoints(output_dir, seed, runs)
                for run in runs if seed in config.seeds else runs[:1]:  # dense_seeds: the dense run only
                    _train(config, base, schedule, run, seed, last_ckpt)
        else:
            train_side_by_side(_jobs(config, base, schedule, runs), parallel, _train)
        from .report import write_report

        if is_rank_zero():
            write_report(output_dir)
    return output_dir


def _last_checkpoints(output_dir: Path, seed: int, runs: list[RunSpec]) -> dict[str, str]:
    return {run.name: str(run_paths(output_dir, seed, run.name).last) for run in runs}


def _jobs(config: ExperimentConfig, base: dict, schedule: Schedule, runs: list[RunSpec]) -> list[Job]:
    """The unfinished runs as jobs for ``train_side_by_side``, each needing the runs it builds on
    (its lineage, its weights' run), seeds interleaved so that the seeds' chains go side by side."""
    output_dir = Path(config.output_dir)
    per_seed = [[(seed, run) for run in (runs if seed in config.seeds else runs[:1])]
                for seed in [*config.seeds, *config.dense_seeds]]
    ordered = [job for step in zip_longest(*per_seed) for job in step if job is not None]
    jobs = []
    for seed, run in ordered:
        paths = run_paths(output_dir, seed, run.name)
        if paths.metrics.exists() or _take_reused(config, seed, run):
            continue
        jobs.append(Job((seed, run.name), frozenset((seed, name) for name in run.builds_on), paths.root / "train.log",
                        (config, base, schedule, run, seed, _last_checkpoints(output_dir, seed, runs))))
    return jobs


def _finished(config: ExperimentConfig) -> bool:
    """Whether every run of a part has its metrics.json (the parts' joint report needs them all)."""
    from .report import planned_metrics

    manifest = ExperimentPaths.of(config.output_dir).manifest
    return manifest.is_file() and all(path.is_file() for path in planned_metrics(manifest.parent, read_json(manifest)))


def is_rank_zero() -> bool:
    """True unless this process is a non-zero rank started by a distributed launcher."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


def run_config(config: ExperimentConfig, base: dict, schedule: Schedule, run: RunSpec, seed: int,
              last_ckpt: dict[str, str]) -> RunConfig:
    """The run's full config, typed, for the launcher (its ``to_config()`` is the run's config.yaml):
    the base, its pruning callbacks, checkpoints, logger."""
    paths = run_paths(config.output_dir, seed, run.name)
    # The runner owns checkpointing, and runs are bounded by max_steps (the schedule is in steps):
    # the base config's ModelCheckpoint and TrainTimeBudget would fight that.
    replaced = ("ModelCheckpoint", "TrainTimeBudget")
    kept = [cb for cb in base["trainer"].get("callbacks") or [] if not str(cb.get("class_path", "")).endswith(replaced)]
    every = max(1, (run.max_steps or schedule.max_steps) // 20)
    checkpoints = [
        Component.of(BestAfterStep, dirpath=str(paths.checkpoints), filename="best", monitor=config.monitor, mode=config.mode,
                     save_top_k=1, after_step=run.best_after_step, enable_version_counter=False),
        Component.of(ModelCheckpoint, dirpath=str(paths.checkpoints), save_last=True, save_top_k=0,
                     every_n_train_steps=every),
    ]
    has_monitor = any(str(cb.get("class_path", "")).endswith("SparsityMonitor") for cb in kept)
    monitor = [] if has_monitor else [Component.of(SparsityMonitor, every_n_steps=every)]
    # Lightning's Timer keeps the training time in each checkpoint, so a killed run's earlier
    # sittings count in its wall time (with max_time, Lightning adds a Timer of its own; a base
    # config's own Timer serves as well)
    has_timer = base["trainer"].get("max_time") or any(str(cb.get("class_path", "")).endswith(".Timer") for cb in kept)
    timer = [] if has_timer else [Component.of(Timer, interval="step", verbose=False)]
    # a chain's first runs (weights from no earlier run) start from the pretrained weights
    start = [Component.of(PretrainedStart, source=str(Path(config.pretrained).resolve()))] \
        if config.pretrained and run.parent is None and run.weights_from is None else []
    accepted = model_arguments(base)  # a user's module gets the settings it takes
    model = {"output_dir": str(paths.test), "warmup_steps": schedule.warmup_steps}  # the paper's proportion
    return RunConfig(
        base=base, callbacks=[*start, *run_callbacks(run, last_ckpt, schedule, seed), *kept, *monitor, *timer, *checkpoints],
        logger=_logger(config, run, seed, paths), seed=seed, root_dir=str(paths.root),
        model={key: value for key, value in model.items() if key in accepted and value is not None},
        trainer={"max_steps": run.max_steps} if run.max_steps else {},
    )


def _logger(config: ExperimentConfig, run: RunSpec, seed: int, paths: RunPaths) -> Component:
    if not config.wandb:
        return Component(qualified("loggers.CSVLogger"), {"save_dir": str(paths.root), "name": "logs"})
    run_id = f"{zlib.crc32(str(paths.root.resolve()).encode()):08x}"  # stable: a resumed run continues its W&B run
    return Component(
        qualified("loggers.WandbLogger"),
        {
            "project": config.wandb_project,
            "group": config.experiment_name,
            "job_type": run.methods[0],
            "name": f"seed{seed}/{run.name}",
            "id": run_id,
            "save_dir": str(paths.root),
            "resume": "allow",
            "config": {"run": run.name, "kind": run.kind, "sparsity": run.sparsity, "seed": seed,
                       "methods": run.methods, "mask_from": run.parent, "weights_from": run.weights_from,
                       "rewind_step": run.rewind_step, "lineage": run.lineage},
        },
    )


def _check_reused(config: ExperimentConfig, manifest: dict, folders: list[str] | None = None) -> None:
    """Each ``reuse`` folder must hold runs of this experiment's settings: base config, schedule,
    pretrained start, and the metric that chose their best checkpoints."""
    for folder in config.reuse if folders is None else folders:
        path = ExperimentPaths.of(folder).manifest
        if not path.is_file():
            raise ValueError(f"reuse: {folder} holds no {path.name}; run that experiment (or part) first: its finished "
                             "runs are what this one continues from")
        saved = read_json(path)
        changed = [key for key in ("base_config_sha256", "schedule", "pretrained") if saved.get(key) != manifest.get(key)]
        changed += [key for key in ("monitor", "mode") if saved.get("config", {}).get(key, getattr(ExperimentConfig, key))
                    != getattr(config, key)]
        if changed:
            raise ValueError(f"reuse: {folder} was trained with other settings ({', '.join(changed)} differ); its runs "
                             "cannot go on here: reuse a folder trained with the same base config and schedule")


def _take_reused(config: ExperimentConfig, seed: int, run: RunSpec) -> bool:
    """Take a finished run of the same name and seed from a ``reuse`` folder: its files hard-linked
    (copied across file systems) into a staging folder renamed into place, and a metrics.json of
    this plan's methods. Only a run that has not started here, and whose ancestors here were taken
    from that same folder: never half of a run, nor a run on another chain's ticket. True if taken."""
    paths = run_paths(config.output_dir, seed, run.name)
    if paths.root.exists() and paths.own_entries():
        return False  # started here: it resumes here
    for folder in config.reuse:
        other = run_paths(folder, seed, run.name)
        if not other.metrics.is_file() or not all(_reused_from(run_paths(config.output_dir, seed, name))
                                                  == str(run_paths(folder, seed, name).root) for name in run.builds_on):
            continue
        staging = paths.root.with_name(paths.root.name + ".reusing")
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed attempt
        for entry in [entry for entry in other.own_entries() if entry != other.metrics]:
            files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
            for file in files:
                destination = staging / file.relative_to(other.root)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(file, destination)
                except OSError:  # another file system
                    shutil.copy2(file, destination)
        metrics = read_json(other.metrics)
        metrics.update(methods=run.methods, reported_in=run.reported_in, reused_from=str(other.root))
        write_json(staging / other.metrics.name, metrics)  # this plan's columns, not the source plan's
        if paths.root.exists():
            paths.root.rmdir()  # empty: nothing of this run was started here
        paths.root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, paths.root)
        log.warning(f"seed{seed}/{run.name}: taken from {other.root} (reuse), not trained again")
        return True
    return False


def _reused_from(paths: RunPaths) -> str | None:
    """The folder a finished run here was taken from (None: trained here, or not finished)."""
    return read_json(paths.metrics).get("reused_from") if paths.metrics.is_file() else None


def _train(config: ExperimentConfig, base: dict, schedule: Schedule, run: RunSpec, seed: int, last_ckpt: dict[str, str]) -> None:
    paths = run_paths(config.output_dir, seed, run.name)
    if paths.metrics.exists() or _take_reused(config, seed, run):
        return
    resume = paths.last if paths.last.exists() else None
    spec = run_config(config, base, schedule, run, seed, last_ckpt)
    if is_rank_zero():
        write_text(paths.config, "# written by lightning-slt experiment; re-run with: lightning-slt fit --config this file\n"
                   "# (its Timer keeps the training time; a time limit goes in its duration: Lightning ignores\n"
                   "# trainer.max_time beside a Timer)\n"
                   + yaml.safe_dump(spec.to_config(), sort_keys=False))
    built = build(spec)  # the dict itself, not the file: no rank waits for rank 0's copy
    trainer, model, datamodule = built.trainer, built.model, built.datamodule
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    wall_time = time.perf_counter() - started
    best = paths.best if paths.best.exists() else paths.last
    valid = _stage_metrics(trainer.validate(model, datamodule=datamodule, ckpt_path=str(best), verbose=False), "valid")
    test = _stage_metrics(trainer.test(model, datamodule=datamodule, ckpt_path=str(best), verbose=False), "test")
    if isinstance(model, TranslationModule):  # ours: sacreBLEU's figures and signature, as always
        valid = {key: valid.get(key) for key in ("bleu", "chrf", "ter")}
        test = {key: (model.last_test_metrics or {}).get(key)
                for key in ("bleu", "chrf", "ter", "n_sentences", "split", "signature")}
    try:
        if trainer.is_global_zero:
            metrics = _finish(config, run, seed, paths, best, valid, test, wall_time, trainer.global_step,
                              ticket=isinstance(model, TranslationModule))
            metrics["machine"] = {"cpu": cpu_description(), "precision": str(trainer.precision),
                                  "threads": torch.get_num_threads()}  # the figures depend on them
            _log_ticket(config, run, seed, paths, trainer, metrics)
            write_json(paths.metrics, metrics)  # last: its presence marks the run finished
    finally:
        _finish_logger(trainer)


def _stage_metrics(results: list[dict], stage: str) -> dict:
    """What ``trainer.validate``/``test`` returned, by name without the stage prefix (``val/acc`` -> ``acc``)."""
    logged = results[0] if results else {}
    return {metric_name(key, stage): float(value) for key, value in logged.items()}


def _log_ticket(config: ExperimentConfig, run: RunSpec, seed: int, paths: RunPaths, trainer: Any,
                metrics: dict) -> None:
    """The run's ticket as a W&B model artifact, named by experiment, seed and lineage.

    Before metrics.json is written: if the upload fails, the run is not marked finished and the
    next invocation logs it again (from its last.ckpt, without training).
    """
    if type(trainer.logger).__name__ != "WandbLogger" or metrics.get("ticket") is None:
        return
    from lightning_slt.export.wandb_artifact import artifact_name, log_ticket_artifact

    log_ticket_artifact(paths.ticket, trainer.logger, name=artifact_name(f"{config.experiment_name}-seed{seed}-{run.name}"),
                        aliases=["best"], metadata={
                            "run": run.name, "seed": seed, "methods": run.methods, "lineage": run.lineage,
                            "parent_run": run.parent, "weights_from": run.weights_from,
                            f"valid_{config.metric}": metrics["valid"].get(config.metric),
                            f"test_{config.metric}": metrics["test"].get(config.metric)})


def _finish_logger(trainer: Any) -> None:
    if trainer.logger is not None and type(trainer.logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def _finish(config: ExperimentConfig, run: RunSpec, seed: int, paths: RunPaths, best: Path, valid: dict,
            test: dict, wall_time: float, steps: int, ticket: bool = True) -> dict:
    """Write mask, θk and (for our model) the ticket; return the metrics for metrics.json (the
    caller writes it last, atomically: its presence marks the run finished).

    ``wall_time``: this sitting's fit; the run's own is the Timer's record in ``last.ckpt`` where it
    has one (every sitting's training, up to that checkpoint).
    """
    checkpoint = read_checkpoint(paths.last)
    last = run_checkpoint(checkpoint, str(paths.last))
    wall_time = _timer_seconds(checkpoint, default=wall_time)
    masks = last.masks or {}
    write_torch(paths.mask, masks)
    snapshots = last.snapshots
    if snapshots:  # θk: the largest recorded step (the dense run also holds θ0, for LT)
        k = max(snapshots)
        write_torch(paths.theta_k, {"step": k, "weights": snapshots[k]})
    weights = _without_aliases(last.weights or {})  # a tied embedding (Hugging Face models) counted once
    total = sum(t.numel() for t in weights.values() if t.is_floating_point())
    pruned = sum(int((~m).sum()) for m in masks.values())
    prunable = sum(m.numel() for m in masks.values()) or sum(t.numel() for t in weights.values() if t.dim() >= 2)
    ancestors = [read_json(run_paths(config.output_dir, seed, name).metrics) for name in run.lineage
                 if run_paths(config.output_dir, seed, name).metrics.exists()]
    if run.weights_from and run.weights_from not in run.lineage:
        ancestors.append(read_json(run_paths(config.output_dir, seed, run.weights_from).metrics))
    metrics = {
        "run": run.name, "kind": run.kind, "seed": seed, "methods": run.methods, "reported_in": run.reported_in,
        "sparsity_target": run.sparsity,
        "sparsity": pruned / prunable if masks else 0.0,
        "layer_sparsity": {name: int((~m).sum()) / m.numel() for name, m in masks.items()},
        "parameters": total, "prunable_parameters": prunable, "remaining_parameters": total - pruned,
        "dense_mb": total * 4 / 2**20,
        "sparse_mb": _csc_megabytes(weights, masks),
        "valid": valid, "test": test,
        "best_checkpoint": str(best), "last_checkpoint": str(paths.last),
        "steps": steps, "wall_time_s": wall_time,
        "mask_from": run.parent, "weights_from": run.weights_from, "rewind_step": run.rewind_step,
        "lineage": run.lineage,
        "lineage_steps": steps + sum(a["steps"] for a in ancestors),
        "lineage_wall_time_s": wall_time + sum(a["wall_time_s"] for a in ancestors),
    }
    if ticket:
        metrics["ticket"] = {"path": str(paths.ticket), **export_checkpoint(best, paths.ticket)}
    else:  # a ticket file holds a TranslationModule (translate, CTranslate2): best.ckpt is the user's
        metrics["ticket"] = None
        log.info(f"{run.name}: no model.ticket (tickets hold our TranslationModule); the run's model is {best}")
    return metrics


def _timer_seconds(checkpoint: dict, default: float) -> float:
    """The training time Lightning's Timer kept in a checkpoint, summed over the sittings it was
    resumed in (a checkpoint written before runs carried a Timer: ``default``)."""
    state = (checkpoint.get("callbacks") or {}).get(Timer.__qualname__)  # Callback.state_key of a Timer
    seconds = ((state or {}).get("time_elapsed") or {}).get("train")
    return default if seconds is None else float(seconds)


def _without_aliases(tensors: dict) -> dict:
    """``tensors`` with each storage once, under its first name: a state_dict lists a tied weight
    under every name (MarianMTModel: the shared embedding, both embed_tokens and lm_head)."""
    seen: set = set()
    unique = {}
    for name, tensor in tensors.items():
        key = storage_key(tensor)
        if key is None or key not in seen:
            seen.add(key)
            unique[name] = tensor
    return unique


def _csc_megabytes(weights: dict, masks: dict) -> float:
    """Memory as the paper reports it (§2): pruned matrices in CSC (4-byte value + 4-byte row
    index per non-zero, 4 bytes per column pointer), everything else dense fp32."""
    total = 0
    for name, tensor in weights.items():
        if not tensor.is_floating_point():
            continue
        mask = masks.get(name)  # masks and state_dict are keyed by the same module parameter names
        if mask is None or tensor.dim() != 2:
            total += tensor.numel() * 4
        else:
            total += int(mask.sum()) * 8 + (tensor.shape[1] + 1) * 4
    return total / 2**20


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read an experiment YAML (and ``--key=value`` overrides) into a checked ExperimentConfig."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="lightning-slt experiment", exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_class_arguments(ExperimentConfig, as_positional=False)
    cfg = parser.parse_args(["--config", str(path), *(overrides or [])])
    cfg.pop("config", None)
    return ExperimentConfig(**cfg.as_dict())
