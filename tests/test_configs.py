"""Every shipped LightningCLI config parses with the CLI parser (nothing is built or trained).

Generic on purpose: files added later under conf/ are covered too. conf/experiments/ holds
experiment-runner files, not LightningCLI configs; they have their own test.
"""

from pathlib import Path

import pytest
import yaml

from lightning_slt.cli import parse_config

CONF = Path(__file__).resolve().parents[1] / "conf"
NOT_CLI_CONFIGS = {"experiments"}
CONFIGS = sorted(
    path for path in CONF.rglob("*.yaml") if path.relative_to(CONF).parts[0] not in NOT_CLI_CONFIGS
)


def test_the_core_configs_exist():
    names = {str(path.relative_to(CONF)) for path in CONFIGS}
    assert {"quickstart.yaml", "multi30k_cpu.yaml", "model/transformer_base.yaml", "model/transformer_cpu.yaml",
            "data/multi30k_ende.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(CONF)))
def test_config_parses_with_the_cli_parser(path):
    parse_config(["fit", "--config", str(path)])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(CONF)))
def test_config_opens_with_purpose_command_and_override_example(path):
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert header, f"{path} must open with a comment saying what it reproduces"
    assert "lightning-slt " in text, f"{path}: the opening comment must give the exact command"
    assert "override example" in text.lower(), f"{path}: the opening comment must give one override example"


def test_fragments_compose_with_the_baseline():
    config = parse_config(["fit", "--config", str(CONF / "multi30k_cpu.yaml"),
                           "--config", str(CONF / "model" / "transformer_base.yaml")])
    assert (config.fit.model.d_model, config.fit.model.optimizer) == (512, "adafactor")
    assert config.fit.data.vocab_size == 8000
    assert [c.class_path.rsplit(".", 1)[-1] for c in config.fit.trainer.callbacks] == _baseline_callbacks()


def _baseline_callbacks() -> list[str]:
    """Class names of conf/multi30k_cpu.yaml's own callbacks, in order (a ModelCheckpoint among them)."""
    names = [c["class_path"].rsplit(".", 1)[-1] for c in yaml.safe_load((CONF / "multi30k_cpu.yaml").read_text())["trainer"]["callbacks"]]
    assert "ModelCheckpoint" in names
    return names


PRUNING = sorted((CONF / "pruning").glob("*.yaml"))


@pytest.mark.parametrize("path", PRUNING, ids=lambda path: path.name)
def test_pruning_config_adds_its_callbacks_after_the_baselines(path):
    """`--config conf/multi30k_cpu.yaml --config conf/pruning/X.yaml` keeps the ModelCheckpoint."""
    config = parse_config(["fit", "--config", str(CONF / "multi30k_cpu.yaml"), "--config", str(path)])
    added = (yaml.safe_load(path.read_text()).get("trainer") or {}).get("callbacks") or []
    added = added if isinstance(added, list) else [added]
    names = [c.class_path.rsplit(".", 1)[-1] for c in config.fit.trainer.callbacks]
    assert names == _baseline_callbacks() + [c["class_path"].rsplit(".", 1)[-1] for c in added]
    assert config.fit.trainer.callbacks[names.index("ModelCheckpoint")].init_args.monitor == "val/bleu"
