"""A config or text file handed in where a checkpoint belongs is said as such, by every command.

It used to surface as torch's weights-only "UnpicklingError ... In PyTorch 2.6, we changed the
default value of weights_only", and advised deleting the file "to train that run again". Each
case asserts the exit status, the message (what, which file, the fix) and that nothing was
written. Budget: < 40 s (three command-line processes, no training).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .tiny import REPO_ROOT, file_states

# Each case runs a command of the CLI in its own process.
pytestmark = pytest.mark.slow

LIGHTNING_SLT = str(Path(sys.executable).parent / "lightning-slt")
TEXTS = {
    "yaml_config": ("run.yaml", "trainer:\n  max_steps: 10\nmodel:\n  d_model: 16\n", "is a YAML config"),
    "readme": ("notes.txt", "# my notes\nthe run went well\n", "is a text file"),
}
COMMANDS = {
    "export": lambda f, out: ["export", str(f), "--out", str(out / "x.ticket")],
    "export_ctranslate2": lambda f, out: ["export", str(f), "--format", "ctranslate2", "--out", str(out / "ct2")],
    "translate": lambda f, out: ["translate", "--checkpoint", str(f), "--input", str(out / "in.txt"),
                                 "--output", str(out / "out.txt")],
}


@pytest.mark.parametrize("command, text", [("export", "yaml_config"), ("export_ctranslate2", "readme"),
                                           ("translate", "yaml_config")])
def test_text_file_as_checkpoint_is_named_as_such(command, text, tmp_path, tally):
    name, content, says = TEXTS[text]
    path = tmp_path / name
    path.write_text(content)
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    before = file_states(tmp_path)
    done = subprocess.run([LIGHTNING_SLT, *COMMANDS[command](path, tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    message = done.stderr
    assert done.returncode != 0
    assert f"'{path}' {says}, not a torch checkpoint" in message, message[-2000:]
    assert "pass a checkpoint file written by a run" in message
    assert "UnpicklingError" not in message and "delete it" not in message
    assert file_states(tmp_path) == before
    tally("bad_inputs")


@pytest.mark.parametrize("text", TEXTS)
def test_text_file_as_any_checkpoint_in_python_is_named_as_such(text, tmp_path, tally):
    from lightning_slt.artifacts.loading import read_checkpoint

    name, content, says = TEXTS[text]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=f"pruning source '.*{name}' {says}, not a torch checkpoint"):
        read_checkpoint(path, what="pruning source")
    tally("bad_inputs")
