"""The old class paths of the checkpoint classes keep resolving: every experiment run's config.yaml
written before they moved to lightning_slt.checkpointing names them here."""

from jsonargparse import ArgumentParser

import lightning_slt.checkpointing as current
import lightning_slt.experiments.checkpointing as old


def test_the_old_module_is_the_same_classes():
    assert old.__all__ == ["AtomicCheckpointIO", "BestAfterStep", "use_atomic_checkpoints"]
    assert all(getattr(old, name) is getattr(current, name) for name in old.__all__)


def test_a_config_naming_the_old_class_path_builds_the_callback():
    parser = ArgumentParser()
    parser.add_argument("--callback", type=current.BestAfterStep)
    config = parser.parse_args(['--callback={"class_path": "lightning_slt.experiments.checkpointing.BestAfterStep", '
                                '"init_args": {"after_step": 80, "monitor": "val/bleu", "mode": "max"}}'])
    callback = parser.instantiate_classes(config).callback
    assert type(callback) is current.BestAfterStep and (callback.after_step, callback.monitor) == (80, "val/bleu")
