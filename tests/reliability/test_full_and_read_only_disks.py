"""Real full and read-only file systems (tmpfs mounts, no mocks) under a real fit.

- Disk full at a checkpoint save: the error names the file and the fix ("No space left on
  device" alone says neither), the previous ``last.ckpt`` is intact and loadable, and no
  temporary file is left behind.
- A read-only checkpoint folder given to ``lightning-slt fit``: refused before training, naming
  the folder and the fix, nothing written.

Needs root to mount tmpfs (CI and the team's machines run as root); skipped otherwise.
Budget: < 40 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from .tiny import REPO_ROOT, StepCounter, cli_config, file_states, make_module, make_trainer


def _mount(folder: Path, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}): needs root")


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_disk_full_at_a_checkpoint_names_the_file_and_keeps_the_previous_one(make_data, tmp_path, tally):
    data = make_data()
    probe = tmp_path / "probe.ckpt"  # how big one checkpoint of this run is
    trainer = make_trainer(tmp_path / "p", max_steps=1)
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(probe)
    size = probe.stat().st_size
    disk = tmp_path / "disk"
    _mount(disk, f"size={int(size * 1.5) // 4096 * 4096 + 4096}")  # room for one checkpoint, not two
    try:
        saver = ModelCheckpoint(dirpath=disk, save_last=True, save_top_k=0, every_n_train_steps=2)
        counter = StepCounter()
        trainer = make_trainer(tmp_path / "run", max_steps=6, enable_checkpointing=True, callbacks=[saver, counter])
        with pytest.raises(OSError) as info:
            trainer.fit(make_module(data), datamodule=data)
        message = str(info.value)
        assert f"cannot write {disk / 'last.ckpt'}: No space left on device" in message, message
        assert "free space on that file system or write to another one" in message
        assert "an earlier version of the file, if any, is unchanged" in message
        assert counter.steps == 4  # the save at step 2 fitted, the one at step 4 did not
        assert [p.name for p in disk.iterdir()] == ["last.ckpt"]  # no temporary file left
        assert torch.load(disk / "last.ckpt", weights_only=True)["global_step"] == 2
    finally:
        _umount(disk)
    tally("bad_inputs")
    tally("files")


@pytest.mark.slow
def test_read_only_checkpoint_folder_refused_by_a_real_fit_before_training(data_root, spm_cache, tmp_path, tally):
    config = cli_config(tmp_path, data_root, spm_cache)
    folder = tmp_path / "run" / "ckpt"
    _mount(folder, "ro", "size=64k")
    try:
        before = file_states(tmp_path)
        done = subprocess.run([str(Path(sys.executable).parent / "lightning-slt"), "fit", "--config", str(config)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "WANDB_MODE": "offline"})
        assert done.returncode != 0
        assert f"the checkpoint folder {folder} is not writable" in done.stderr, done.stderr[-2000:]
        assert "Read-only file system" in done.stderr and "make it writable or set ModelCheckpoint's dirpath" in done.stderr
        assert "Epoch 0" not in done.stderr  # no training started
        assert file_states(tmp_path) == before
    finally:
        _umount(folder)
    tally("bad_inputs")
