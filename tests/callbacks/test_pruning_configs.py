"""conf/pruning/*.yaml add their callbacks to the base config's; the base ModelCheckpoint survives."""

from pathlib import Path

import pytest

from lightning_slt.cli import parse_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PRUNING = sorted((REPO_ROOT / "conf" / "pruning").glob("*.yaml"))


@pytest.mark.parametrize("path", PRUNING, ids=lambda p: p.name)
def test_pruning_config_appends_to_base_callbacks(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    cfg = parse_config(["fit", "--config", "conf/multi30k_cpu.yaml", "--config", str(path.relative_to(REPO_ROOT))])
    classes = [c.class_path.rsplit(".", 1)[1] for c in cfg.fit.trainer.callbacks]
    assert classes[0] == "ModelCheckpoint", classes  # the base config's, kept
    assert cfg.fit.trainer.callbacks[0].init_args.monitor == "val/bleu"
    import yaml

    own = [c["class_path"].rsplit(".", 1)[1] for c in yaml.safe_load(path.read_text())["trainer"]["callbacks"]]
    assert classes[1:] == own
