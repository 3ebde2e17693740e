"""A user's own LightningModule and LightningDataModule by ``class_path``, as a new user tries it:
a file ``mymod.py`` in the working folder, ``lightning-slt fit`` and ``lightning-slt experiment``
(both failed with "does not accept option 'class_path'" before), the metric the user logs,
pretrained starts, and the errors for modules that cannot run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from lightning_slt.launch import names_own_classes

MYMOD = textwrap.dedent('''
    import torch
    import lightning.pytorch as pl   # the unified package's namespace, as most users write it
    from torch import nn


    class Clf(pl.LightningModule):
        def __init__(self, hidden: int = 32, lr: float = 0.2):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_acc", (self.net(x).argmax(-1) == y).float().mean() * 100)

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_acc", (self.net(x).argmax(-1) == y).float().mean() * 100)
            self.log("test_loss", nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


    class NoTest(Clf):
        test_step = pl.LightningModule.test_step


    class Data(pl.LightningDataModule):
        def __init__(self, n: int = 96):
            super().__init__()
            self.n = n

        def _loader(self, offset):
            g = torch.Generator().manual_seed(offset)
            x = torch.randn(self.n, 8, generator=g)
            return torch.utils.data.DataLoader(list(zip(x, (x[:, 0] + x[:, 1] > 0).long())), batch_size=16)

        def train_dataloader(self):
            return self._loader(0)

        def val_dataloader(self):
            return self._loader(1)

        def test_dataloader(self):
            return self._loader(2)
''')

BASE = {
    "trainer": {"max_steps": 24, "accelerator": "cpu", "enable_progress_bar": False, "check_val_every_n_epoch": None,
                "val_check_interval": 6, "num_sanity_val_steps": 2},
    "model": {"class_path": "mymod.Clf"},
    "data": {"class_path": "mymod.Data"},
}


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "mymod.py").write_text(MYMOD)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    return tmp_path


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LIGHTNING_SLT_NAMESPACE", None)
    env.pop("PYTHONPATH", None)  # mymod is found in the working folder, as `python -m` finds it
    command = [sys.executable, "-c", "import sys; from lightning_slt.cli import main; sys.exit(main())", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_a_class_path_of_the_users_is_told_apart_from_ours(tmp_path):
    _folder(tmp_path)
    assert names_own_classes(["--config", str(tmp_path / "base.yaml")])
    assert names_own_classes(["--model=mymod.Clf"]) and names_own_classes(["--data.class_path", "mymod.Data"])
    assert names_own_classes({"model": {"class_path": "mymod.Clf"}})
    assert not names_own_classes(["--config", "conf/multi30k_cpu.yaml"])  # ours, without class_path
    assert not names_own_classes({"model": {"class_path": "lightning_slt.TranslationModule"}})  # ours by class_path
    assert not names_own_classes({"fit": {"model": {"class_path": "lightning_slt.model.module.TranslationModule"}}})


@pytest.mark.slow
def test_fit_trains_a_users_module_with_a_pruning_callback(tmp_path):
    folder = _folder(tmp_path)
    config = dict(BASE, trainer=dict(BASE["trainer"], callbacks=[{
        "class_path": "lightning_slt.GradualMagnitudePruning",
        "init_args": {"final_sparsity": 0.75, "begin_step": 0, "end_step": 12, "frequency": 4}}]))
    (folder / "gmp.yaml").write_text(yaml.safe_dump(config))
    result = _run(folder, "fit", "--config", "gmp.yaml", "--trainer.default_root_dir=run")
    assert result.returncode == 0, result.stderr[-3000:]
    last = sorted((folder / "run").rglob("*.ckpt"))[-1]
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    masks = checkpoint["lightning_slt"]["masks"]
    assert sorted(masks) == ["net.0.weight", "net.2.weight"]  # the matrices; biases untouched
    assert [int((~m).sum()) for m in masks.values()] == [192, 48]  # 75 % of 8x32 and of 32x2, exactly


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """SLT, LT and MP on the user's module from pretrained weights, through `lightning-slt experiment`."""
    folder = _folder(tmp_path_factory.mktemp("own"))
    sys.path.insert(0, str(folder))
    try:
        import lightning.pytorch  # noqa: F401 - mymod's namespace
        import mymod
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("mymod", None)
    torch.manual_seed(7)
    pretrained = {name: torch.randn_like(t) for name, t in mymod.Clf().state_dict().items()}
    torch.save(pretrained, folder / "pretrained.pt")
    config = {"base": ["base.yaml"], "methods": ["slt", "lt", "mp"], "targets": [0.5, 0.8], "output_dir": "exp",
              "monitor": "val_acc", "seeds": [0], "pretrained": "pretrained.pt"}
    (folder / "exp.yaml").write_text(yaml.safe_dump(config))
    result = _run(folder, "experiment", "--config", "exp.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, pretrained


@pytest.mark.slow
def test_experiment_runs_slt_lt_mp_on_a_users_module_with_its_own_metric(experiment):
    folder, _ = experiment
    table = (folder / "exp" / "results.md").read_text()
    assert "| Sparsity | Memory | SLT acc | LT acc | MP acc |" in table
    assert "The warm-up rule (θk after the warm-up) was not checked" in table  # Clf takes no warmup_steps
    metrics = json.loads((folder / "exp/seed0/dense/slt_0.50/slt_0.80/metrics.json").read_text())
    assert set(metrics["test"]) == {"acc", "loss"} and set(metrics["valid"]) == {"acc"}
    assert metrics["sparsity"] == 0.8 and metrics["ticket"] is None  # tickets hold our TranslationModule
    header = (folder / "exp" / "results.csv").read_text().splitlines()[0].split(",")
    assert header[5:8] == ["test_acc", "test_loss", "valid_acc"]
    best = torch.load(folder / "exp/seed0/dense/slt_0.50/slt_0.80/checkpoints/best.ckpt", weights_only=True)
    assert "BestAfterStep{'monitor': 'val_acc', 'mode': 'max'" in " ".join(best["callbacks"])


@pytest.mark.slow
def test_lt_rounds_of_a_pretrained_start_rewind_to_the_pretrained_weights_bit_for_bit(experiment):
    folder, pretrained = experiment
    for run in ("dense/lt_0.50", "dense/lt_0.50/lt_0.80"):
        checkpoint = torch.load(folder / "exp/seed0" / run / "checkpoints/last.ckpt", weights_only=True)
        theta0 = checkpoint["callbacks"]["WeightRewind{'step': 0}"]["snapshot"]  # the round's start: θ0 ⊙ m
        masks = checkpoint["lightning_slt"]["masks"]
        for name, value in pretrained.items():
            kept = masks.get(name, torch.ones_like(value, dtype=torch.bool))
            assert torch.equal(theta0[name][kept], value[kept]), (run, name)  # bit for bit
            assert not theta0[name][~kept].any(), (run, name)


def test_a_module_without_test_step_is_refused_before_training(tmp_path):
    from lightning_slt.experiments.runner import check_can_run

    folder = _folder(tmp_path)
    sys.path.insert(0, str(folder))
    try:
        with pytest.raises(ValueError, match=r"mymod.NoTest / mymod.Data defines no test_step: every run"):
            check_can_run({"model": {"class_path": "mymod.NoTest"}, "data": {"class_path": "mymod.Data"}}, "val_acc")
        with pytest.raises(ValueError, match="defines no train_dataloader, val_dataloader, test_dataloader"):
            check_can_run({"model": {"class_path": "mymod.Clf"}}, "val_acc")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("mymod", None)


@pytest.mark.slow
def test_a_metric_the_module_does_not_log_is_refused_at_the_sanity_check(tmp_path):
    folder = _folder(tmp_path)
    experiment = {"base": ["base.yaml"], "methods": ["slt"], "targets": [0.5], "output_dir": "exp"}  # val/bleu
    (folder / "exp.yaml").write_text(yaml.safe_dump(experiment))
    result = _run(folder, "experiment", "--config", "exp.yaml")
    assert result.returncode != 0
    assert "Clf logs no 'val/bleu' in validation; it logs ['val_acc']" in result.stderr
    assert not list((folder / "exp").rglob("*.ckpt"))  # before the first training step


def test_a_base_config_the_parser_refuses_is_one_line_naming_the_file(tmp_path):
    from lightning_slt.launch import parse_base

    folder = _folder(tmp_path)
    bad = {"trainer": BASE["trainer"], "model": {"class_path": "mymod.Nope"}}  # a class mymod does not have
    (folder / "bad.yaml").write_text(yaml.safe_dump(bad))
    sys.path.insert(0, str(folder))
    try:
        with pytest.raises(ValueError) as info:
            parse_base(["--config", str(folder / "bad.yaml")])
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("mymod", None)
    message = str(info.value)
    assert message.startswith(f"base config {folder / 'bad.yaml'}: ") and "\n" not in message
    assert "Problem with given class_path 'mymod.Nope': module 'mymod' has no attribute 'Nope'" in message
