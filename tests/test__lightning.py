"""One place chooses the Lightning namespace: the environment decides, else the namespace already
imported, else pytorch_lightning; callbacks and the checkpoint IO subclass every installed one."""

import sys

import pytest

import lightning_slt._lightning as lightning


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv(lightning.ENV_VAR, raising=False)
    return monkeypatch


def test_the_environment_decides_and_a_wrong_name_lists_the_right_ones(env):
    env.setenv(lightning.ENV_VAR, "lightning.pytorch")
    assert lightning.choose_namespace() == "lightning.pytorch"
    env.setenv(lightning.ENV_VAR, "pytorch_lightning")
    assert lightning.choose_namespace() == "pytorch_lightning"
    env.setenv(lightning.ENV_VAR, "lightning")
    with pytest.raises(ValueError, match="^LIGHTNING_SLT_NAMESPACE='lightning' is not a Lightning namespace; use one "
                                         "of pytorch_lightning, lightning.pytorch$"):
        lightning.choose_namespace()


def test_a_namespace_asked_for_but_not_installed_names_the_package_to_install(env):
    env.setattr(lightning, "_installed", lambda namespace: False)
    env.setenv(lightning.ENV_VAR, "lightning.pytorch")
    with pytest.raises(ImportError, match="^LIGHTNING_SLT_NAMESPACE=lightning.pytorch but lightning.pytorch is not "
                                          "installed: pip install lightning$"):
        lightning.choose_namespace()
    env.setenv(lightning.ENV_VAR, "pytorch_lightning")
    with pytest.raises(ImportError, match="pip install pytorch-lightning$"):
        lightning.choose_namespace()


def test_without_the_variable_the_one_namespace_imported_wins_else_pytorch_lightning(env):
    import pytorch_lightning

    env.delitem(sys.modules, "pytorch_lightning", raising=False)
    env.delitem(sys.modules, "lightning.pytorch", raising=False)
    assert lightning.choose_namespace() == "pytorch_lightning"  # neither imported: the default dependency
    env.setitem(sys.modules, "lightning.pytorch", object())
    assert lightning.choose_namespace() == "lightning.pytorch"
    env.setitem(sys.modules, "pytorch_lightning", pytorch_lightning)
    assert lightning.choose_namespace() == "pytorch_lightning"  # both imported: the default again
    env.setattr(lightning, "_installed", lambda namespace: namespace != "pytorch_lightning")
    env.delitem(sys.modules, "pytorch_lightning")
    env.delitem(sys.modules, "lightning.pytorch")
    assert lightning.choose_namespace() == "lightning.pytorch"  # only `lightning` installed


def test_callbacks_and_the_checkpoint_io_belong_to_every_installed_namespace():
    import lightning.pytorch as lp
    import pytorch_lightning as pl

    assert lightning.NAMESPACE in lightning.NAMESPACES and lightning.pl.__name__ == lightning.NAMESPACE
    assert issubclass(lightning.Callback, pl.Callback) and issubclass(lightning.Callback, lp.Callback)
    assert set(lightning.TORCH_CHECKPOINT_IOS) == {pl.plugins.io.TorchCheckpointIO, lp.plugins.io.TorchCheckpointIO}
    assert all(issubclass(lightning.CheckpointIOBase, io) for io in lightning.TORCH_CHECKPOINT_IOS)
    assert lightning.Callback.__mro__[1] is lightning.pl.Callback  # the chosen namespace's methods win
    assert lightning.qualified("callbacks.ModelCheckpoint") == f"{lightning.NAMESPACE}.callbacks.ModelCheckpoint"
