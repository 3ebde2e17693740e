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

import os
import sys
from collections.abc import Callable
from importlib import import_module

import torch

from lightning_slt._lightning import SIGTERMException
from lightning_slt._runtime import configure_cpu

# The launcher's names, for callers of the console module (tests, older scripts); the package
# itself imports them from lightning_slt.launch.
from lightning_slt.launch import (  # noqa: F401
    REPO_CONF,
    SUBCOMMANDS,
    CallbackAppendingParser,
    TranslationCLI,
    conf_file,
    parse_config,
    run_lightning_cli,
)

# name -> "module:function(argv: list[str]) -> int | None"; add new subcommands here.
COMMANDS: dict[str, str] = {
    "demo": "lightning_slt.demo:demo_main",
    "quickstart": "lightning_slt.cli:demo",
    "experiment": "lightning_slt.experiments.cli:experiment_main",
    "report": "lightning_slt.experiments.cli:report_main",
    "export": "lightning_slt.export.cli:export_main",
    "translate": "lightning_slt.export.translate:translate_main",
}

SIGTERM_EXIT = 128 + 15  # what a shell reports for a process ended by SIGTERM


def demo(argv: list[str]) -> int:
    """``lightning-slt quickstart [overrides]``: train conf/quickstart.yaml, test the best checkpoint
    on Multi30k test2016 (en->de) and print its BLEU. Overrides go to the fit command, e.g.
    ``lightning-slt quickstart --trainer.max_steps=200``."""
    config = conf_file("quickstart.yaml")
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


def _set_threads() -> None:
    """Use every core this process may run on, unless OMP_NUM_THREADS says otherwise (torch's
    default counts physical cores only, which halves throughput on 2-vCPU machines)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def _how_to_resume(args: list[str], checkpoint: str | None) -> str:
    """An experiment resumes by running it again; a single run only from its checkpoint (the same
    command alone would start a new run at step 0)."""
    if args[:1] != ["fit"]:
        return "run the same command again to resume"
    if checkpoint is None:
        return "no checkpoint was written yet, so the same command starts over"
    return f"resume with the same command and --ckpt_path {checkpoint}"


def _import_from_working_folder() -> None:
    """A ``class_path`` such as ``mymod.Clf`` is found in the working folder, as ``python -m``
    finds it (a console script's ``sys.path`` starts at its own folder instead)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _run_in_namespace_of_own_classes(args: list[str]) -> None:
    """Start the command again under the Lightning namespace of the user's module, if it is not
    this process's (``lightning.pytorch`` modules are common; the package defaults to
    ``pytorch_lightning``, and Lightning does not mix the two)."""
    from lightning_slt._lightning import ENV_VAR, NAMESPACE
    from lightning_slt.launch import namespace_of_own_classes

    if ENV_VAR in os.environ or args[:1] not in [[name] for name in (*SUBCOMMANDS, "experiment")]:
        return
    source = args[1:] if args[0] != "experiment" else _experiment_base(args[1:])
    wanted = namespace_of_own_classes(source)
    if wanted is not None and wanted != NAMESPACE:
        os.execve(sys.executable, [sys.executable, "-m", "lightning_slt.cli", *args], {**os.environ, ENV_VAR: wanted})


def _experiment_base(args: list[str]) -> list[str]:
    """The ``--config`` options of the base configs an experiment YAML names (``base:``)."""
    from lightning_slt.launch import read_yaml_mapping

    for i, arg in enumerate(args):
        name, has_value, value = arg.partition("=")
        if name == "--config" and (has_value or i + 1 < len(args)):
            experiment = read_yaml_mapping(value if has_value else args[i + 1])
            bases = experiment.get("base") or []
            return [option for base in ([bases] if isinstance(bases, str) else bases) for option in ("--config", str(base))]
    return []


def _resolve(target: str) -> Callable[[list[str]], int | None]:
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lightning-slt``: an extra subcommand from ``COMMANDS`` or LightningCLI."""
    # Keeping freed heap memory suits a process doing one job: the command itself (argv from the
    # command line, also in each rank a DDP launcher starts), not a caller such as a test process.
    configure_cpu(reuse_freed_memory=argv is None)
    _set_threads()
    _import_from_working_folder()
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        _run_in_namespace_of_own_classes(args)
    try:
        if args and args[0] in COMMANDS:
            return _resolve(COMMANDS[args[0]])(args[1:]) or 0
        if args in ([], ["-h"], ["--help"]):
            print("extra subcommands: " + ", ".join(sorted(COMMANDS)) + " (lightning-slt <name> --help)\n")
        run_lightning_cli(None if argv is None else args)
    except SIGTERMException as stop:
        # Lightning stops at a step boundary (every checkpoint written so far is whole) and exits 0,
        # which a scheduler reads as "finished": say it was stopped, with the shell's 128 + SIGTERM.
        print(f"lightning-slt {' '.join(args[:1])}: stopped by SIGTERM before the end; the checkpoints written so "
              f"far are whole: {_how_to_resume(args, getattr(stop, 'resume_from', None))}", file=sys.stderr)
        return SIGTERM_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
