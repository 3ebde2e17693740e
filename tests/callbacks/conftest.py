import pytest

from lightning_slt import WeightRewind

from .tiny import fresh_module, make_trainer


@pytest.fixture(scope="session")
def dense_ckpt(tmp_path_factory):
    """A finished dense run (12 steps) that recorded θ0 and θ3, saved as a Lightning checkpoint."""
    path = tmp_path_factory.mktemp("dense") / "last.ckpt"
    module = fresh_module(0)
    trainer = make_trainer(12, [WeightRewind(step=0), WeightRewind(step=3)])
    trainer.fit(module)
    trainer.save_checkpoint(path)
    return path
