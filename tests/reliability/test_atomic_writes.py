"""Every file the project writes appears whole or not at all.

Audit (writer of each file, all through a temporary file beside the target and ``os.replace``):

    Lightning checkpoints   checkpointing.AtomicCheckpointIO (installed by the CLI,
                            hence by the experiment runner) -> atomic.write_torch
    mask.pt, theta_k.pt     experiments.runner._finish -> atomic.write_torch
    metrics.json            experiments.runner._train (after _finish) -> atomic.write_json
    model.ticket (run)      experiments.runner._finish -> artifacts.ticket.write_ticket
    experiment.json         experiments.runner.run_experiment -> atomic.write_json
    config.yaml (run)       experiments.runner._train -> atomic.write_text
    results.csv/.md, .png   experiments.report.write_report -> atomic.write_text / atomic.write_bytes
    tickets                 artifacts.ticket.write_ticket -> atomic.write_bytes
    tokenizer cache         data.tokenizer.train_tokenizer -> _write_atomic
    hypotheses, references, metrics  model.module.TranslationModule._write_test_outputs -> atomic.write_text
    corpus downloads        data.corpora.download_corpus -> _fetch_verified

For each file the real writer runs with a fault injected into that file's write only: a crash
halfway through writing its bytes, or a crash at the final rename; once with no file there yet
and once over an earlier version. Afterwards the target is absent or byte-for-byte the earlier
version (same mtime), and no temporary file is left behind. Each file kind is one "file checked".

Not the project's: Lightning's own logs (CSVLogger metrics.csv, hparams.yaml, the CLI's copy of
its config) and W&B files.
"""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_slt import GradualMagnitudePruning, TranslationModule, WeightRewind
from lightning_slt.data import download_corpus, read_parallel, resolve_corpus, train_tokenizer
from lightning_slt.data.checksums import UPSTREAM
from lightning_slt.experiments import ExperimentConfig, RunSpec, run_paths, write_report
from lightning_slt.experiments import runner
from lightning_slt.checkpointing import AtomicCheckpointIO
from lightning_slt.export import export_checkpoint

from .tiny import TINY_MODEL, cli_config, file_states, make_data, make_module, make_trainer

FAULTS = ("mid_write", "at_rename")


class _CrashingFile:
    """A file handle whose first ``write`` stores half of the bytes, then raises: a crash mid-write."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data):
        self._handle.write(data[: max(1, len(data) // 2)])
        self._handle.flush()
        raise OSError("simulated crash in the middle of a write")

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()
        return False


def _concerns(path, target: str) -> bool:
    """The target itself (a writer writing in place) or one of its temporary files (``.<name>...``)."""
    name = Path(os.fspath(path)).name
    return name == target or name.startswith(f".{target}")


def inject(monkeypatch: pytest.MonkeyPatch, target: str, fault: str) -> None:
    """Make writes of files named ``target`` (and their temporary files) crash as ``fault`` says."""
    if fault == "at_rename":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if _concerns(dst, target):
                raise OSError(f"simulated crash while renaming onto {dst}")
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
        return
    real_open, real_fdopen = builtins.open, os.fdopen

    def writing(mode) -> bool:
        return any(flag in str(mode) for flag in "wax+")

    def fake_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return _CrashingFile(handle) if writing(mode) and not isinstance(file, int) and _concerns(file, target) else handle

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        path = os.readlink(f"/proc/self/fd/{fd}")
        handle = real_fdopen(fd, mode, *args, **kwargs)
        return _CrashingFile(handle) if writing(mode) and _concerns(path, target) else handle

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)


def check_atomic(monkeypatch, folder: Path, target: str, write, overwrite: bool = True) -> None:
    """Run ``write(version)`` (which writes ``folder/.../target``) under every fault, with the
    target absent and (``overwrite``) over an earlier version; the target must never be partial."""
    for fault in FAULTS:
        for earlier in (False, True) if overwrite else (False,):
            case = folder / f"{fault}-{'over' if earlier else 'new'}"
            case.mkdir(parents=True)
            if earlier:
                write(case, 1)
            before = file_states(case)
            with monkeypatch.context() as patch:
                inject(patch, target, fault)
                with pytest.raises((OSError, RuntimeError, SystemExit)) as info:  # SystemExit: a command's one line
                    write(case, 2)
            assert "simulated crash" in str(info.value) or "simulated crash" in repr(info.value.__context__)
            after = file_states(case)
            targets = [path for path in after if Path(path).name == target]
            strays = [path for path in after if Path(path).name.startswith(f".{target}")
                      and not path.endswith(".lock")]  # the tokenizer cache's (empty) inter-process lock
            assert not strays, (fault, strays)
            if earlier:
                assert targets and all(after[t] == before[t] for t in targets), (fault, "earlier version changed")
            else:
                assert not targets, (fault, "a partial file was left", targets)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, data_root, spm_cache) -> SimpleNamespace:
    """A tiny pruned run's last.ckpt (masks, θ0 and θ2) and its data module."""
    root = tmp_path_factory.mktemp("pruned")
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(root, max_steps=3, callbacks=[GradualMagnitudePruning(0.5, end_step=2, frequency=1),
                                                         WeightRewind(step=0), WeightRewind(step=2)])
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(root / "last.ckpt")
    return SimpleNamespace(ckpt=root / "last.ckpt", data=data,
                           checkpoint=torch.load(root / "last.ckpt", map_location="cpu", weights_only=True))


# ----------------------------------------------------------------------------- one test per file kind


def test_checkpoint(monkeypatch, pruned, tmp_path, tally):
    def write(folder, version):
        AtomicCheckpointIO().save_checkpoint({**pruned.checkpoint, "global_step": version}, folder / "ckpt" / "last.ckpt")

    check_atomic(monkeypatch, tmp_path, "last.ckpt", write)
    tally("files")


def _finish_run(pruned, folder: Path, version: int) -> None:
    """The runner's end of a run: mask.pt, theta_k.pt, model.ticket, then metrics.json (as _train)."""
    config = ExperimentConfig(base=["unused.yaml"], methods=["slt"], output_dir=str(folder), targets=[0.5])
    run = RunSpec("dense/slt_0.50", "slt", 0.5, "dense", "dense", rewind_step=2)
    paths = run_paths(folder, 0, run.name)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    if not paths.last.exists():
        paths.last.symlink_to(pruned.ckpt)
    metrics = runner._finish(config, run, 0, paths, paths.last, {"val/bleu": 1.0}, {"bleu": 2.0}, 1.5, version)
    runner.write_json(paths.metrics, metrics)


@pytest.mark.parametrize("target", ["mask.pt", "theta_k.pt", "model.ticket", "metrics.json"])
def test_run_outputs(target, monkeypatch, pruned, tmp_path, tally):
    check_atomic(monkeypatch, tmp_path, target, lambda folder, version: _finish_run(pruned, folder, version))
    tally("files")


@pytest.mark.parametrize(("target", "writer"), [("experiment.json", runner.write_json), ("config.yaml", runner.write_text)])
def test_experiment_manifest_and_run_config(target, writer, monkeypatch, tmp_path, tally):
    def write(folder, version):
        content = {"version": version} if target.endswith(".json") else f"version: {version}\n"
        writer(folder / "seed0" / "dense" / target if target == "config.yaml" else folder / target, content)

    check_atomic(monkeypatch, tmp_path, target, write)
    tally("files")


def _report(folder: Path, version: int) -> None:
    runner.write_json(folder / "experiment.json", {"config": {"methods": ["slt"], "output_dir": str(folder)}})
    metrics = {"run": "dense/slt_0.50", "kind": "slt", "seed": 0, "methods": ["slt"], "reported_in": ["slt"],
               "sparsity_target": 0.5, "sparsity": 0.5, "sparse_mb": 1.0, "remaining_parameters": 10,
               "steps": 10 * version, "wall_time_s": 1.0, "lineage_steps": 20, "lineage_wall_time_s": 2.0,
               "mask_from": "dense", "weights_from": "dense", "valid": {"bleu": 1.0}, "test": {"bleu": float(version)}}
    runner.write_json(folder / "seed0" / "dense" / "slt_0.50" / "metrics.json", metrics)
    write_report(folder, paper=None, wandb=False)


@pytest.mark.parametrize("target", ["results.csv", "results.md", "bleu_vs_sparsity.png"])
def test_report_files(target, monkeypatch, tmp_path, tally):
    check_atomic(monkeypatch, tmp_path, target, _report)
    tally("files")


def test_ticket(monkeypatch, pruned, tmp_path, tally):
    def write(folder, version):
        export_checkpoint(pruned.ckpt, folder / "model.ticket", values_dtype="float32" if version == 1 else "float16")

    check_atomic(monkeypatch, tmp_path, "model.ticket", write)
    tally("files")


def test_tokenizer_cache(monkeypatch, data_root, tmp_path, tally):
    src, tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "valid", root=data_root))
    name = []

    def write(folder, version):
        tokenizer = train_tokenizer(src[:200] + tgt[:200], folder / "spm", vocab_size=100)
        name.append(tokenizer.path.name)

    write(tmp_path, 0)  # learn the cache file's name (a hash of the text and options)
    check_atomic(monkeypatch, tmp_path, name[0], write, overwrite=False)  # a cached model is never rewritten
    tally("files")


@pytest.mark.parametrize("target", ["hypotheses_test.txt", "references_test.txt", "metrics_test.json"])
def test_test_outputs(target, monkeypatch, tmp_path, tally):
    def write(folder, version):
        module = TranslationModule(vocab_size=100, output_dir=str(folder / "test"), **TINY_MODEL)
        module.last_test_metrics = {"bleu": float(version), "split": "test"}
        module._write_test_outputs("test", [f"hypothesis {i} of version {version}" for i in range(50)],
                                   [f"reference {i} of version {version}" for i in range(50)])

    check_atomic(monkeypatch, tmp_path, target, write)
    tally("files")


def test_corpus_download(monkeypatch, data_root, tmp_path, tally):
    mirror = tmp_path / "mirror"  # a file:// mirror of the upstream layout, linking the real files
    for relative, upstream in UPSTREAM.items():
        if relative.startswith("multi30k/"):
            (mirror / upstream.url_path).parent.mkdir(parents=True, exist_ok=True)
            (mirror / upstream.url_path).symlink_to(data_root / relative)

    def write(folder, version):
        download_corpus("multi30k", "en-de", root=folder, base_url=f"file://{mirror}")

    check_atomic(monkeypatch, tmp_path / "roots", "valid.de.gz", write, overwrite=False)  # a verified file is kept
    tally("files")


def test_atomic_files_get_the_usual_permissions(pruned, tmp_path):
    AtomicCheckpointIO().save_checkpoint(pruned.checkpoint, tmp_path / "last.ckpt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600


def test_the_cli_and_the_runner_write_checkpoints_atomically(data_root, spm_cache, tmp_path):
    from lightning_slt.cli import TranslationCLI

    cli = TranslationCLI(args=["--config", str(cli_config(tmp_path, data_root, spm_cache))], run=False)
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO  # the runner builds its runs this way


def test_translate_output(monkeypatch, pruned, tmp_path):
    from lightning_slt.export.translate import translate_main

    export_checkpoint(pruned.ckpt, tmp_path / "model.ticket")
    (tmp_path / "in.txt").write_text("A dog runs.\nTwo men talk.\n")

    def write(folder, version):
        translate_main(["--ticket", str(tmp_path / "model.ticket"), "--input", str(tmp_path / "in.txt"),
                        "--output", str(folder / "out.txt"), "--beam", str(version)])

    check_atomic(monkeypatch, tmp_path / "runs", "out.txt", write)
