"""An experiment (``lightning-slt experiment``) in its own process, killable at a chosen point.

Usage: python -m tests.reliability._chain_run CONFIG [--kill-after RUN] [--kill-in RUN:STEP]
       [--term-in RUN:STEP] [--pause-in RUN:STEP:FILE]

``--kill-after RUN`` sends SIGKILL to the process right after RUN's ``metrics.json`` is written,
i.e. between that run and the next; ``--kill-in RUN:STEP`` at the start of RUN's training batch
when ``global_step == STEP``, i.e. in the middle of that run; ``--term-in RUN:STEP`` sends SIGTERM
there instead. ``--pause-in RUN:STEP:FILE`` waits there, holding the experiment's lock, until
FILE exists (writing FILE.paused when it starts waiting), so a test can start a second process
at a known point without timing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from lightning_slt import cli
from lightning_slt.experiments import runner
from lightning_slt.model.module import TranslationModule


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_finishing(run: str) -> None:
    write_json = runner.write_json

    def write_then_die(path, data):
        write_json(path, data)
        if Path(path).name == "metrics.json" and Path(path).parent.as_posix().endswith("/" + run):
            _die()

    runner.write_json = write_then_die


def at_step(run: str, step: int, action) -> None:
    """Call ``action()`` at the start of RUN's training batch when ``global_step == step``."""
    def on_train_batch_start(self, batch, batch_idx):
        if str(self.hparams.output_dir).endswith(f"/{run}/test") and self.global_step == step:
            action()

    TranslationModule.on_train_batch_start = on_train_batch_start


def kill_in(run: str, step: int) -> None:
    at_step(run, step, _die)


def pause_until(go: Path) -> None:
    Path(f"{go}.paused").write_text(str(os.getpid()))
    while not go.exists():
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    if "--kill-after" in argv:
        kill_after_finishing(argv[argv.index("--kill-after") + 1])
    if "--kill-in" in argv:
        run, step = argv[argv.index("--kill-in") + 1].split(":")
        kill_in(run, int(step))
    if "--term-in" in argv:
        run, step = argv[argv.index("--term-in") + 1].split(":")
        at_step(run, int(step), lambda: os.kill(os.getpid(), signal.SIGTERM))
    if "--pause-in" in argv:
        run, step, go = argv[argv.index("--pause-in") + 1].split(":")
        at_step(run, int(step), lambda: pause_until(Path(go)))
    return cli.main(["experiment", "--config", argv[0]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
