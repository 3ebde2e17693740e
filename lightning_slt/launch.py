"""Building one run from a config: Trainer, ``TranslationModule`` and ``TranslationDataModule``.

One launcher for both ways a run starts: the ``lightning-slt fit/validate/test/predict``
commands (``lightning_slt.cli``, the console entry) and the experiment runner, which hands it a
typed ``RunConfig`` instead of a command line. LightningCLI (jsonargparse) stays the parser, so
a run's ``config.yaml`` is exactly what was parsed and re-runs with ``lightning-slt fit
--config``. What the launcher adds to LightningCLI:

- ``model.vocab_size`` is linked from ``data.vocab_size`` (the sentencepiece model's size,
  known once the datamodule is built), ``data.max_positions`` from ``model.max_positions``;
- config files concatenate their ``trainer.callbacks`` (``CallbackAppendingParser``);
- the seed defaults to 0, and the saved ``config.yaml`` may be overwritten when a run reuses
  its folder;
- checkpoints are written atomically (``AtomicCheckpointIO``, unless the config sets another
  checkpoint IO), and a read-only checkpoint folder is refused before training;
- a ``--ckpt_path`` is checked against the model before anything runs, and only its
  architecture replaces the configured model arguments.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace, get_loader

from lightning_slt._lightning import LightningArgumentParser, LightningCLI, Trainer
from lightning_slt._runtime import cpu_precision
from lightning_slt.artifacts import read_checkpoint
from lightning_slt.atomic import check_writable
from lightning_slt.checkpointing import use_atomic_checkpoints
from lightning_slt.data import TranslationDataModule
from lightning_slt.model.module import ARCHITECTURE_ARGUMENTS, TranslationModule

SUBCOMMANDS = ("fit", "validate", "test", "predict")
REPO_CONF = Path(__file__).resolve().parents[1] / "conf"
_ARGS_WARNING = ".*LightningCLI's args parameter.*"  # our callers pass ``args`` while sys.argv holds the command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Component:
    """A class to build and its arguments: a callback or a logger of a run.

    ``Component.of(WeightRewind, step=150)`` binds the arguments to the class's signature, so a
    misspelt argument fails when the run is specified, not when it starts; ``to_config`` is the
    ``class_path``/``init_args`` form a run's config.yaml holds (arguments in the order given).
    """

    class_path: str
    init_args: dict = field(default_factory=dict)

    @classmethod
    def of(cls, type_: type, /, **init_args: Any) -> Component:
        try:
            inspect.signature(type_).bind(**init_args)
        except TypeError as err:
            raise TypeError(f"{type_.__name__}({', '.join(init_args)}): {err}; see its docstring for the arguments") from None
        return cls(public_path(type_), init_args)

    def to_config(self) -> dict:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


def public_path(type_: type) -> str:
    """``type_``'s ``class_path`` through the nearest package that exports it
    (``lightning_slt.callbacks.WeightRewind``, not ``...callbacks.weight_rewind.WeightRewind``)."""
    parts = type_.__module__.split(".")
    for end in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:end])
        if getattr(sys.modules.get(package), type_.__name__, None) is type_:
            return f"{package}.{type_.__qualname__}"
    return f"{type_.__module__}.{type_.__qualname__}"


@dataclass
class RunConfig:
    """One run, typed: what the experiment runner hands the launcher.

    Attributes:
        base: the base config as LightningCLI parsed it (a dict, every key present, nulls kept);
            parsed once per experiment, never changed here.
        callbacks: the run's whole ``trainer.callbacks`` list, in order: ``Component``s, or a
            base callback kept as parsed (its dict).
        logger: the run's logger.
        seed: ``seed_everything``.
        root_dir: ``trainer.default_root_dir``.
        model: ``model`` arguments that replace the base's.
        trainer: ``trainer`` arguments that replace the base's (a run longer than the others).
    """

    base: dict
    callbacks: list[Component | dict]
    logger: Component
    seed: int
    root_dir: str
    model: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)

    def to_config(self) -> dict:
        """The run's full LightningCLI config: what config.yaml holds and what is parsed."""
        cfg = copy.deepcopy(self.base)
        trainer = cfg["trainer"]
        trainer["callbacks"] = [c.to_config() if isinstance(c, Component) else copy.deepcopy(c) for c in self.callbacks]
        trainer["default_root_dir"] = self.root_dir
        trainer["logger"] = self.logger.to_config()
        cfg["seed_everything"] = self.seed
        cfg["model"].update(self.model)
        trainer.update(self.trainer)
        return cfg


class CallbackAppendingParser(LightningArgumentParser):
    """LightningCLI's parser, except that ``trainer.callbacks`` of each config file is appended.

    jsonargparse replaces a list when a later config sets it again; for callbacks that silently
    drops the base config's ModelCheckpoint when a pruning config is added. Rewriting the key to
    jsonargparse's append form ``callbacks+`` in every config file makes the lists concatenate
    in ``--config`` order (the first file appends to the empty default).
    """

    def parse_string(self, content: str, path: str | os.PathLike = "", *args: Any, **kwargs: Any) -> Namespace:
        return super().parse_string(_append_callbacks(content, self.parser_mode), path, *args, **kwargs)


def _append_callbacks(content: str, parser_mode: str) -> str:
    """``content`` with every ``trainer.callbacks`` key renamed to ``trainer.callbacks+``."""
    if parser_mode not in ("yaml", "omegaconf"):
        return content
    try:
        config = get_loader(parser_mode)(content)
    except Exception:  # noqa: BLE001 - jsonargparse reports the syntax error itself
        return content
    if not isinstance(config, dict):
        return content
    changed = False
    scopes = [config] + [config[name] for name in SUBCOMMANDS if isinstance(config.get(name), dict)]
    for scope in scopes:
        if isinstance(scope.get("trainer"), dict) and "callbacks" in scope["trainer"]:
            scope["trainer"] = _rename_key(scope["trainer"], "callbacks", "callbacks+")
            changed = True
        if "trainer.callbacks" in scope:
            scope.update(_rename_key(scope, "trainer.callbacks", "trainer.callbacks+"))
            changed = True
    if not changed:
        return content
    return yaml.safe_dump(config, sort_keys=False)


def _rename_key(mapping: dict, old: str, new: str) -> dict:
    renamed = {(new if key == old else key): value for key, value in mapping.items()}
    mapping.clear()
    mapping.update(renamed)
    return mapping


class TranslationCLI(LightningCLI):
    """LightningCLI over ``TranslationModule`` and ``TranslationDataModule`` (what it adds: the
    module docstring).

    Args:
        args: command-line style arguments or a full config dict; None reads ``sys.argv``.
        run: run the subcommand (``fit`` etc.); False parses the options of a single run.
        parse_only: only parse and validate (``self.config``), build nothing.
        kwargs: any other ``LightningCLI`` argument.
    """

    def __init__(self, args: list[str] | dict | None = None, run: bool = True, parse_only: bool = False,
                 **kwargs: Any) -> None:
        self._parse_only = parse_only
        self._checkpoint: dict | None = None  # --ckpt_path, read once before the run to check it
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            TranslationModule, TranslationDataModule, parser_class=CallbackAppendingParser,
            auto_configure_optimizers=False, args=args, run=run, **kwargs,
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ARGS_WARNING)
            super().parse_arguments(parser, args)
        # LightningCLI torch.loads --ckpt_path right after parsing (for its hyper-parameters), where
        # a truncated file fails with a zip-reader error; read it here first to say what is wrong.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._checkpoint = None
        if ckpt_path is not None and not _resolved_by_lightning(str(ckpt_path)):
            self._checkpoint = read_checkpoint(ckpt_path, mmap=True)
            _check_written_by_translation_module(self._checkpoint, str(ckpt_path))

    def _parse_ckpt_path(self) -> None:
        """Take the model's architecture from ``--ckpt_path``, and nothing else.

        LightningCLI (2.6) replaces every ``model`` argument by the checkpoint's hyper-parameters,
        so ``test --ckpt_path x.ckpt --model.beam_size=5`` silently decoded with the training
        run's beam size and wrote to its ``output_dir``. The sizes must follow the checkpoint;
        decoding, optimisation and output settings stay as this command configures them.
        """
        saved = (self._checkpoint or {}).get("hyper_parameters") or {}
        architecture = {name: saved[name] for name in ARCHITECTURE_ARGUMENTS if name in saved}
        if architecture:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": architecture}}, self.config)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        # One length limit: the position table the model builds is what the data may fill.
        parser.link_arguments("model.max_positions", "data.max_positions")

    def before_instantiate_classes(self) -> None:
        if self._parse_only:
            self.subcommand = None  # LightningCLI runs nothing without a subcommand
            return
        # before the Trainer and Lightning's saved config.yaml: both say what the run trains in
        _train_precision_of_this_cpu((self.config[self.subcommand] if self.subcommand else self.config).trainer)

    def instantiate_classes(self) -> None:
        if not self._parse_only:
            super().instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)  # Lightning's own writer is atomic only if $TMPDIR shares the disk
        if self.subcommand in ("fit", None):  # None: a run built by `build`, which fits next
            _check_checkpoint_folders(trainer)
        return trainer

    def before_fit(self) -> None:
        self._check_ckpt_path()

    def before_validate(self) -> None:
        self._check_ckpt_path()

    def before_test(self) -> None:
        self._check_ckpt_path()

    def before_predict(self) -> None:
        self._check_ckpt_path()

    def _check_ckpt_path(self) -> None:
        """Refuse a ``--ckpt_path`` that cannot be restored into this model before the Trainer
        starts, so that a missing, corrupt or mismatched checkpoint leaves no logs, config copy or
        checkpoint behind (Lightning would find out only after its setup hooks wrote them)."""
        if self._checkpoint is None:
            return
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        tokenizer = self.datamodule.tokenizer if self.datamodule is not None else None
        self.model.check_checkpoint(self._checkpoint, f"checkpoint {ckpt_path}", tokenizer=tokenizer)
        self._checkpoint = None  # Lightning loads it again for the run; free the mapped copy


def _train_precision_of_this_cpu(trainer: Namespace) -> None:
    """Set ``trainer.precision`` to what this machine trains it in (``cpu_precision``), saying why."""
    trainer.precision, why = cpu_precision(trainer.precision, trainer.accelerator)
    if why:
        log.warning(why)


def _check_checkpoint_folders(trainer: Trainer) -> None:
    """A read-only checkpoint folder is refused before training, not found at the first save."""
    folders = {callback.dirpath for callback in trainer.checkpoint_callbacks if callback.dirpath} or {
        trainer.default_root_dir}
    for folder in sorted(folders):
        check_writable(folder, "the checkpoint folder", "make it writable or set ModelCheckpoint's dirpath "
                       "(or trainer.default_root_dir) to a writable folder")


def _check_written_by_translation_module(checkpoint: dict, ckpt_path: str) -> None:
    """LightningCLI parses a checkpoint's hyper-parameters as ``model`` arguments; those of another
    LightningModule would fail there with "does not accept option", so say what the file is."""
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(
            f"checkpoint {ckpt_path} holds a {type(checkpoint).__name__} without 'state_dict': it is not a Lightning "
            "checkpoint (a plain state_dict or mask file goes to ConvergedMask/WeightRewind instead)"
        )
    arguments = inspect.signature(TranslationModule.__init__).parameters
    foreign = sorted(k for k in checkpoint.get("hyper_parameters") or {} if not k.startswith("_") and k not in arguments)
    if foreign:
        raise ValueError(
            f"checkpoint {ckpt_path} was not written by a TranslationModule: its hyper-parameters {foreign[:5]} are "
            "not TranslationModule arguments; pass a checkpoint of `lightning-slt fit`"
        )


def _resolved_by_lightning(ckpt_path: str) -> bool:
    """Lightning's ckpt_path keywords ("last", "best", "hpc", "registry:...") and remote URLs."""
    return ckpt_path in ("last", "best", "hpc") or ckpt_path.startswith("registry") or "://" in ckpt_path


def parse_config(args: list[str]) -> Namespace:
    """Parse and type-check a command line such as ``["fit", "--config", "conf/x.yaml"]``
    without building the model, the data or a Trainer (used to check every shipped config)."""
    return TranslationCLI(args=args, parse_only=True).config


def parse_base(args: list[str]) -> dict:
    """A single run's config from ``--config`` files and overrides, validated and fully resolved
    (every key present; an explicit null kept: ``check_val_every_n_epoch: null`` validates by steps
    across epochs, and dropping it would bring back the Trainer default), nothing built."""
    cli = TranslationCLI(args=args, run=False, parse_only=True)
    _train_precision_of_this_cpu(cli.config.trainer)  # what the run will train in here, as `build` would
    return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))


def run_lightning_cli(args: list[str] | None = None) -> TranslationCLI:
    """Run LightningCLI (``fit``/``validate``/``test``/``predict``) and return it (trainer,
    model and datamodule are attributes)."""
    return TranslationCLI(args=args)


def build(run: RunConfig | dict) -> TranslationCLI:
    """Trainer, model and datamodule of one run (attributes of the result), nothing run yet.

    The config dict itself is parsed, not a file: under DDP no rank waits for rank 0's copy.
    """
    return TranslationCLI(args=run.to_config() if isinstance(run, RunConfig) else run, run=False)


def conf_file(name: str) -> Path:
    """A shipped config: from the checkout beside the package, else from the working directory."""
    for folder in (REPO_CONF, Path.cwd() / "conf"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"conf/{name} not found next to the package ({REPO_CONF}) or in {Path.cwd()}")
