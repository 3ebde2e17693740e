"""The ``lightning-slt`` command: LightningCLI for fit/validate/test/predict, plus extra commands.

Usage::

    lightning-slt fit --config conf/multi30k_cpu.yaml
    lightning-slt fit --config conf/multi30k_cpu.yaml --config conf/pruning/<name>.yaml
    lightning-slt test --config conf/multi30k_cpu.yaml --ckpt_path path/to/best.ckpt
    lightning-slt demo                      # dense run, one SLT round, dense-vs-ticket table (lightning_slt/demo.py)
    lightning-slt quickstart                # train conf/quickstart.yaml, then test on Multi30k test2016

Several ``--config`` files are merged in order, as LightningCLI does, with one exception: their
``trainer.callbacks`` lists are concatenated instead of the later list replacing the earlier one,
so a pruning config adds its callbacks next to the base config's ModelCheckpoint (jsonargparse's
``callbacks+`` append, applied to every config file). A ``--trainer.callbacks=[...]`` on the
command line still replaces the list.

Extra subcommands (``demo``; later ``experiment``, ``report``, ``export``, ``translate``) are
entries of ``COMMANDS``: a name mapped to ``"module:function"``, imported only when called,
where the function takes the remaining arguments (``list[str]``) and returns an exit code or
None. Everything else goes to LightningCLI.
"""

import inspect
import os
import sys
import warnings
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace, get_loader

from lightning_slt._lightning import LightningArgumentParser, LightningCLI, SIGTERMException, Trainer
from lightning_slt._runtime import configure_cpu
from lightning_slt.atomic import check_writable
from lightning_slt.data import TranslationDataModule
from lightning_slt.experiments.checkpointing import read_checkpoint, use_atomic_checkpoints
from lightning_slt.model.module import ARCHITECTURE_ARGUMENTS, TranslationModule

# name -> "module:function(argv: list[str]) -> int | None"; add new subcommands here.
COMMANDS: dict[str, str] = {
    "demo": "lightning_slt.demo:demo_main",
    "quickstart": "lightning_slt.cli:demo",
    "experiment": "lightning_slt.experiments.cli:experiment_main",
    "report": "lightning_slt.experiments.cli:report_main",
    "export": "lightning_slt.export.cli:export_main",
    "translate": "lightning_slt.export.translate:translate_main",
}

_LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
SIGTERM_EXIT = 128 + 15  # what a shell reports for a process ended by SIGTERM
REPO_CONF = Path(__file__).resolve().parents[1] / "conf"


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
    scopes = [config] + [config[name] for name in _LIGHTNING_SUBCOMMANDS if isinstance(config.get(name), dict)]
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
    """LightningCLI over ``TranslationModule`` and ``TranslationDataModule``.

    ``model.vocab_size`` is linked from ``data.vocab_size`` (the sentencepiece model's size,
    known once the datamodule is built), ``data.max_positions`` from ``model.max_positions``
    (set it on the model only), configs concatenate their callbacks (see
    ``CallbackAppendingParser``), the seed defaults to 0 and the saved ``config.yaml`` may be
    overwritten when a run reuses its folder. Checkpoints are written atomically
    (``AtomicCheckpointIO``, unless the config sets another checkpoint IO), and a ``--ckpt_path``
    is checked against the model before anything runs.

    Args:
        args: command-line style arguments; None reads ``sys.argv``.
        run: run the subcommand (``fit`` etc.); False parses the options of a single run.
        parse_only: only parse and validate (``self.config``), build nothing.
        kwargs: any other ``LightningCLI`` argument.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, parse_only: bool = False,
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
        # Our own entry points pass ``args`` while sys.argv holds the command: not a mistake.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
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

    def instantiate_classes(self) -> None:
        if not self._parse_only:
            super().instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)  # Lightning's own writer is atomic only if $TMPDIR shares the disk
        if self.subcommand in ("fit", None):  # None: the experiment runner, which fits next
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


def run_lightning_cli(args: list[str] | None = None) -> TranslationCLI:
    """Run LightningCLI (``fit``/``validate``/``test``/``predict``) and return it (trainer,
    model and datamodule are attributes)."""
    return TranslationCLI(args=args)


def demo(argv: list[str]) -> int:
    """``lightning-slt quickstart [overrides]``: train conf/quickstart.yaml, test the best checkpoint
    on Multi30k test2016 (en->de) and print its BLEU. Overrides go to the fit command, e.g.
    ``lightning-slt quickstart --trainer.max_steps=200``."""
    config = _conf_file("quickstart.yaml")
    cli = run_lightning_cli(["fit", "--config", str(config), *argv])
    callback = cli.trainer.checkpoint_callback
    checkpoint = (callback.best_model_path or callback.last_model_path) if callback is not None else ""
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint or None)
    metrics = cli.model.last_test_metrics
    if cli.trainer.is_global_zero and metrics is not None:
        print(
            f"\nMulti30k {metrics['split']} {metrics['src_lang']}->{metrics['tgt_lang']}: "
            f"BLEU {metrics['bleu']:.2f}  chrF {metrics['chrf']:.2f}  TER {metrics['ter']:.2f} "
            f"({metrics['n_sentences']} sentences, beam {metrics['beam_size']})\n"
            f"sacreBLEU {metrics['signature']['bleu']}\n"
            f"checkpoint: {checkpoint or '(final weights)'}\n"
            f"outputs: {cli.model.test_output_dir()}"
        )
    return 0


def _conf_file(name: str) -> Path:
    """A shipped config: from the checkout beside the package, else from the working directory."""
    for folder in (REPO_CONF, Path.cwd() / "conf"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"conf/{name} not found next to the package ({REPO_CONF}) or in {Path.cwd()}")


def _set_threads() -> None:
    """Use every core this process may run on, unless OMP_NUM_THREADS says otherwise (torch's
    default counts physical cores only, which halves throughput on 2-vCPU machines)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def _resolve(target: str) -> Callable[[list[str]], int | None]:
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightning-slt``: an extra subcommand from ``COMMANDS`` or LightningCLI."""
    # Keeping freed heap memory suits a process doing one job: the command itself (argv from the
    # command line, also in each rank a DDP launcher starts), not a caller such as a test process.
    configure_cpu(reuse_freed_memory=argv is None)
    _set_threads()
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args and args[0] in COMMANDS:
            return _resolve(COMMANDS[args[0]])(args[1:]) or 0
        if args in ([], ["-h"], ["--help"]):
            print("extra subcommands: " + ", ".join(sorted(COMMANDS)) + " (lightning-slt <name> --help)\n")
        run_lightning_cli(None if argv is None else args)
    except SIGTERMException:
        # Lightning stops at a step boundary (every checkpoint written so far is whole) and exits 0,
        # which a scheduler reads as "finished": say it was stopped, with the shell's 128 + SIGTERM.
        print(f"lightning-slt {' '.join(args[:1])}: stopped by SIGTERM before the end; the checkpoints written so "
              "far are whole: run the same command again to resume", file=sys.stderr)
        return SIGTERM_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
