"""Building one run from a config: Trainer, a LightningModule and its data module.

``TranslationModule`` and ``TranslationDataModule`` are the default. A config that names a
module or data module of the user's by ``class_path`` (``model: {class_path: mymod.Clf}``) is
parsed in LightningCLI's subclass mode instead, where any LightningModule and
LightningDataModule are accepted; the links below that only make sense for ours are then left
out. Our own classes by ``class_path`` still parse as the default (the class_path is dropped).

One launcher for both ways a run starts: the ``lightning-slt fit/validate/test/predict``
commands (``lightning_slt.cli``, the console entry) and the experiment runner, which hands it a
typed ``RunConfig`` instead of a command line. LightningCLI (jsonargparse) stays the parser, so
a run's ``config.yaml`` is exactly what was parsed and re-runs with ``lightning-slt fit
--config``. What the launcher adds to LightningCLI:

- (our classes only) ``model.vocab_size`` is linked from ``data.vocab_size`` (the sentencepiece model's size,
  known once the datamodule is built), ``data.max_positions`` from ``model.max_positions``;
- config files concatenate their ``trainer.callbacks`` (``CallbackAppendingParser``);
- the seed defaults to 0, and the saved ``config.yaml`` may be overwritten when a run reuses
  its folder;
- checkpoints are written atomically (``AtomicCheckpointIO``, unless the config sets another
  checkpoint IO), and a read-only checkpoint folder is refused before training;
- a ``--ckpt_path`` is read safely and checked before anything runs; for ours, only its
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
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, Namespace, get_loader

from lightning_slt._lightning import (
    ENV_VAR,
    NAMESPACE,
    LightningArgumentParser,
    LightningCLI,
    SIGTERMException,
    Trainer,
)
from lightning_slt._runtime import cpu_precision
from lightning_slt.artifacts import read_checkpoint
from lightning_slt.atomic import check_writable
from lightning_slt.callbacks.progress_bar import use_step_progress_bar
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
        model = cfg.setdefault("model", {})
        (model.setdefault("init_args", {}) if "class_path" in model else model).update(self.model)
        trainer.update(self.trainer)
        return cfg


OUR_CLASSES = {"model": TranslationModule, "data": TranslationDataModule}


def model_arguments(config: dict) -> dict:
    """The model's arguments in a parsed run config: ``init_args`` of a ``class_path`` form
    (a user's module), else the ``model`` mapping itself (ours)."""
    model = config.get("model") or {}
    return (model.get("init_args") or {}) if "class_path" in model else model


def names_own_classes(args: list[str] | dict | None) -> bool:
    """Whether a command line or config names a model or data module that is not ours by
    ``class_path``: in ``--config`` files, ``--model``/``--data`` options, or a config dict."""
    return any(not _is_ours(group, class_path) for group, class_path in _class_paths(args))


def namespace_of_own_classes(args: list[str] | dict | None) -> str | None:
    """The Lightning namespace (``lightning.pytorch`` or ``pytorch_lightning``) the user's classes
    named in ``args`` subclass, if they import and subclass one; None otherwise."""
    for group, class_path in _class_paths(args):
        if _is_ours(group, class_path):
            continue
        try:
            base = lightning_base(class_of(class_path))
        except (ImportError, AttributeError, ValueError):
            continue  # the parser says the class cannot be imported
        if base is not None:
            return "lightning.pytorch" if base.__module__.startswith("lightning.pytorch") else "pytorch_lightning"
    return None


def class_of(class_path: str) -> type:
    """The class a ``class_path`` names (``mymod.Clf``), imported as LightningCLI imports it."""
    module_name, _, name = class_path.rpartition(".")
    return getattr(import_module(module_name), name)


def lightning_base(type_: type) -> type | None:
    """The ``LightningModule`` or ``LightningDataModule`` class ``type_`` subclasses, of either namespace."""
    return next((b for b in getattr(type_, "__mro__", ()) if b.__name__ in ("LightningModule", "LightningDataModule")),
                None)


def check_namespace(args: list[str] | dict | None) -> None:
    """Refuse user classes of the other Lightning namespace than this process's, saying how to
    choose it (LightningCLI would say only "does not correspond to a subclass of LightningModule")."""
    wanted = namespace_of_own_classes(args)
    if wanted is not None and wanted != NAMESPACE:
        raise ValueError(
            f"the configured module subclasses {wanted}.LightningModule (or DataModule), but this process uses "
            f"{NAMESPACE}: Lightning does not mix the two; set {ENV_VAR}={wanted} in the environment (the "
            "`lightning-slt` command does this itself)"
        )


def _class_paths(args: list[str] | dict | None) -> list[tuple[str, str]]:
    if args is None:
        return []
    if isinstance(args, dict):
        return _class_paths_in(args)
    found = []
    for i, arg in enumerate(args):
        name, has_value, value = arg.partition("=")
        if not has_value and i + 1 < len(args):
            value = args[i + 1]
        if name == "--config":
            found += _class_paths_in(read_yaml_mapping(value))
        for group in OUR_CLASSES:
            if name in (f"--{group}", f"--{group}.class_path"):
                try:
                    found += _class_paths_in({group: yaml.safe_load(value)})
                except yaml.YAMLError:
                    found.append((group, value))
    return found


def read_yaml_mapping(path: str) -> dict:
    """A YAML file's mapping, or {} where it is missing or not YAML (the parser then says what is
    wrong with it, in its own words)."""
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _class_paths_in(config: Any) -> list[tuple[str, str]]:
    """``class_path`` values of ``model``/``data`` at the top of a config or under a subcommand."""
    if not isinstance(config, dict):
        return []
    scopes = [config] + [config[name] for name in SUBCOMMANDS if isinstance(config.get(name), dict)]
    found = []
    for scope in scopes:
        for group in OUR_CLASSES:
            value = scope.get(group)
            if isinstance(value, str):
                found.append((group, value))
            elif isinstance(value, dict) and isinstance(value.get("class_path"), str):
                found.append((group, value["class_path"]))
    return found


def _is_ours(group: str, class_path: str) -> bool:
    if not class_path.startswith("lightning_slt."):
        return False
    try:
        return class_of(class_path) is OUR_CLASSES[group]
    except (ImportError, AttributeError):
        return False


class CallbackAppendingParser(LightningArgumentParser):
    """LightningCLI's parser, except that ``trainer.callbacks`` of each config file is appended.

    jsonargparse replaces a list when a later config sets it again; for callbacks that silently
    drops the base config's ModelCheckpoint when a pruning config is added. Rewriting the key to
    jsonargparse's append form ``callbacks+`` in every config file makes the lists concatenate
    in ``--config`` order (the first file appends to the empty default).
    """

    own_classes = False  # SubclassModeParser: model and data are given by class_path

    def parse_string(self, content: str, path: str | os.PathLike = "", *args: Any, **kwargs: Any) -> Namespace:
        content = _append_callbacks(content, self.parser_mode, self.own_classes)
        return super().parse_string(content, path, *args, **kwargs)


class SubclassModeParser(CallbackAppendingParser):
    """The parser of a run with a module or data module of the user's (``names_own_classes``)."""

    own_classes = True


def _append_callbacks(content: str, parser_mode: str, own_classes: bool = False) -> str:
    """``content`` with every ``trainer.callbacks`` key renamed to ``trainer.callbacks+``, and our
    classes in the form the parser takes: without their ``class_path`` by default, with it in
    subclass mode (a ``data:`` mapping without one is our data module's arguments)."""
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
        changed |= _our_classes_for(scope, own_classes)
        if isinstance(scope.get("trainer"), dict) and "callbacks" in scope["trainer"]:
            scope["trainer"] = _rename_key(scope["trainer"], "callbacks", "callbacks+")
            changed = True
        if "trainer.callbacks" in scope:
            scope.update(_rename_key(scope, "trainer.callbacks", "trainer.callbacks+"))
            changed = True
    if not changed:
        return content
    return yaml.safe_dump(config, sort_keys=False)


def _our_classes_for(scope: dict, own_classes: bool) -> bool:
    """Rewrite ``scope``'s ``model``/``data`` of our classes for the parser's mode; True if changed."""
    changed = False
    for group, ours in OUR_CLASSES.items():
        value = scope.get(group)
        if not isinstance(value, dict):
            continue
        if own_classes and "class_path" not in value:
            scope[group] = {"class_path": public_path(ours), "init_args": value}
            changed = True
        elif not own_classes and isinstance(value.get("class_path"), str) and _is_ours(group, value["class_path"]):
            scope[group] = {**value.get("init_args", {}), **{k: v for k, v in value.items()
                                                              if k not in ("class_path", "init_args")}}
            changed = True
    return changed


def _rename_key(mapping: dict, old: str, new: str) -> dict:
    renamed = {(new if key == old else key): value for key, value in mapping.items()}
    mapping.clear()
    mapping.update(renamed)
    return mapping


class TranslationCLI(LightningCLI):
    """LightningCLI over ``TranslationModule`` and ``TranslationDataModule``, or over any
    LightningModule and LightningDataModule when the config names the user's own by
    ``class_path`` (``own_classes``; what it adds: the module docstring).

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
        self.own_classes = names_own_classes(sys.argv[1:] if args is None else args)
        if self.own_classes:
            check_namespace(sys.argv[1:] if args is None else args)  # None: any LightningModule / LightningDataModule by class_path
            classes, parser_class = (None, None), SubclassModeParser
        else:
            classes, parser_class = (TranslationModule, TranslationDataModule), CallbackAppendingParser
        super().__init__(*classes, parser_class=parser_class, auto_configure_optimizers=False, args=args, run=run,
                         **kwargs)

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
            _check_lightning_checkpoint(self._checkpoint, str(ckpt_path))
            if not self.own_classes:
                _check_written_by_translation_module(self._checkpoint, str(ckpt_path))

    def _parse_ckpt_path(self) -> None:
        """Take the model's architecture from ``--ckpt_path``, and nothing else.

        LightningCLI (2.6) replaces every ``model`` argument by the checkpoint's hyper-parameters,
        so ``test --ckpt_path x.ckpt --model.beam_size=5`` silently decoded with the training
        run's beam size and wrote to its ``output_dir``. The sizes must follow the checkpoint;
        decoding, optimisation and output settings stay as this command configures them.
        A user's module gets LightningCLI's own rule (every saved hyper-parameter).
        """
        if self.own_classes:
            super()._parse_ckpt_path()
            return
        saved = (self._checkpoint or {}).get("hyper_parameters") or {}
        architecture = {name: saved[name] for name in ARCHITECTURE_ARGUMENTS if name in saved}
        if architecture:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": architecture}}, self.config)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        if self.own_classes:
            return
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
        use_step_progress_bar(trainer)  # "Epoch 0", not Lightning's "Epoch 0/-2", in a run bounded by max_steps
        if self.subcommand in ("fit", None):  # None: a run built by `build`, which fits next
            _check_checkpoint_folders(trainer)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except SIGTERMException as stop:
            stop.resume_from = last_checkpoint(self.trainer)  # what `--ckpt_path` resumes from (cli.py says it)
            raise

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
        if self._checkpoint is None or not isinstance(self.model, TranslationModule):
            self._checkpoint = None  # a user's module: Lightning's strict load says what does not fit
            return
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        tokenizer = self.datamodule.tokenizer if self.datamodule is not None else None
        self.model.check_checkpoint(self._checkpoint, f"checkpoint {ckpt_path}", tokenizer=tokenizer)
        self._checkpoint = None  # Lightning loads it again for the run; free the mapped copy


def last_checkpoint(trainer: Trainer) -> str | None:
    """The newest checkpoint a fit has written (its ``last.ckpt`` where it keeps one), or None."""
    written = [path for callback in trainer.checkpoint_callbacks
               for path in (callback.last_model_path, getattr(callback, "_last_checkpoint_saved", ""))
               if path and Path(path).exists()]
    return max(written, key=lambda path: Path(path).stat().st_mtime) if written else None


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


def _check_lightning_checkpoint(checkpoint: Any, ckpt_path: str) -> None:
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(
            f"checkpoint {ckpt_path} holds a {type(checkpoint).__name__} without 'state_dict': it is not a Lightning "
            "checkpoint (a plain state_dict or mask file goes to ConvergedMask/WeightRewind instead)"
        )


def _check_written_by_translation_module(checkpoint: dict, ckpt_path: str) -> None:
    """LightningCLI parses a checkpoint's hyper-parameters as ``model`` arguments; those of another
    LightningModule would fail there with "does not accept option", so say what the file is."""
    _check_lightning_checkpoint(checkpoint, ckpt_path)
    arguments = inspect.signature(TranslationModule.__init__).parameters
    foreign = sorted(k for k in checkpoint.get("hyper_parameters") or {} if not k.startswith("_") and k not in arguments)
    if foreign:
        raise ValueError(
            f"checkpoint {ckpt_path} was not written by a TranslationModule: its hyper-parameters {foreign[:5]} are "
            "not TranslationModule arguments; pass a checkpoint of `lightning-slt fit`, or name the module that "
            "wrote it in the config (model: {class_path: your_module.YourModule})"
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
    try:
        cli = TranslationCLI(args=args, run=False, parse_only=True, parser_kwargs={"exit_on_error": False})
    except ArgumentError as error:  # one sentence naming the files, not a usage screen
        files = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config"]
        raise ValueError(f"base config {', '.join(files) or args}: {_essence(str(error))}") from None
    _train_precision_of_this_cpu(cli.config.trainer)  # what the run will train in here, as `build` would
    return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))


def _essence(message: str) -> str:
    """jsonargparse's error in one line: which key, and the innermost reason it gives."""
    lines = [line.strip(" -") for line in message.splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith("Problem with given class_path")]
    if reasons:
        index = lines.index(reasons[-1])
        return f"{lines[0]} {' '.join(lines[index:index + 2])}"
    return " ".join(lines[:3])


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
