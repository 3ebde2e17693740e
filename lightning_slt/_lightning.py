"""Every Lightning import of the package, from ``pytorch_lightning`` or ``lightning.pytorch``.

Lightning ships the same code under two names that do not accept each other's classes: a
``lightning.pytorch.Trainer`` refuses a ``pytorch_lightning`` plugin, and each namespace's
LightningCLI refuses the other's callbacks by ``class_path``. The package imports Lightning only
from here, so choosing a namespace is one decision in one place:

- ``LIGHTNING_SLT_NAMESPACE=lightning.pytorch`` (or ``pytorch_lightning``) in the environment
  decides;
- otherwise the namespace the process already imported, if it imported exactly one of them;
- otherwise ``pytorch_lightning``, the package's default dependency (``lightning.pytorch`` when
  only ``lightning`` is installed).

``TranslationModule`` and ``TranslationDataModule`` subclass the chosen namespace (Lightning
inspects a module's hooks against its own base class, so one class cannot serve both).
Callbacks and ``AtomicCheckpointIO`` subclass the classes of *every* installed namespace, so they
work in either Trainer and either LightningCLI whichever was chosen.
"""

import importlib
import importlib.util
import os
import sys
from types import ModuleType

ENV_VAR = "LIGHTNING_SLT_NAMESPACE"
NAMESPACES = ("pytorch_lightning", "lightning.pytorch")
_FABRIC = {"pytorch_lightning": "lightning_fabric", "lightning.pytorch": "lightning.fabric"}


def _installed(namespace: str) -> bool:
    return importlib.util.find_spec(namespace.split(".")[0]) is not None


def choose_namespace() -> str:
    """The Lightning namespace this process uses (rules in the module docstring)."""
    wanted = os.environ.get(ENV_VAR)
    if wanted:
        if wanted not in NAMESPACES:
            raise ValueError(f"{ENV_VAR}={wanted!r} is not a Lightning namespace; use one of {', '.join(NAMESPACES)}")
        if not _installed(wanted):
            package = "lightning" if wanted == "lightning.pytorch" else "pytorch-lightning"
            raise ImportError(f"{ENV_VAR}={wanted} but {wanted} is not installed: pip install {package}")
        return wanted
    imported = [name for name in NAMESPACES if name in sys.modules]
    if len(imported) == 1:
        return imported[0]
    return "pytorch_lightning" if _installed("pytorch_lightning") else "lightning.pytorch"


NAMESPACE = choose_namespace()
pl: ModuleType = importlib.import_module(NAMESPACE)
_others = [name for name in NAMESPACES if name != NAMESPACE and _installed(name)]
_ALL = [NAMESPACE, *_others]  # the chosen namespace first: its methods win in the MRO


def _from(module: str, name: str, namespace: str = NAMESPACE) -> type:
    prefix = _FABRIC[namespace] if module.startswith("fabric") else namespace
    return getattr(importlib.import_module(prefix + module.removeprefix("fabric")), name)


def _from_each(module: str, name: str) -> tuple[type, ...]:
    return tuple(_from(module, name, namespace) for namespace in _ALL)


Trainer = pl.Trainer
LightningModule = pl.LightningModule
LightningDataModule = pl.LightningDataModule
ModelCheckpoint = _from(".callbacks", "ModelCheckpoint")
Timer = _from(".callbacks", "Timer")
RichProgressBar = _from(".callbacks", "RichProgressBar")  # importable without rich; built only where rich is
LightningCLI = _from(".cli", "LightningCLI")
LightningArgumentParser = _from(".cli", "LightningArgumentParser")
TrainerFn = _from(".trainer.states", "TrainerFn")
rank_zero_info = _from(".utilities", "rank_zero_info")
rank_zero_warn = _from(".utilities", "rank_zero_warn")
rank_zero_only = _from(".utilities", "rank_zero_only")
SIGTERMException = _from(".utilities.exceptions", "SIGTERMException")
call_configure_model = _from(".trainer.call", "_call_configure_model")  # with the strategy's contexts, as fit does
TORCH_CHECKPOINT_IOS = _from_each("fabric.plugins.io.torch_io", "TorchCheckpointIO")


class Callback(*_from_each(".callbacks", "Callback")):
    """Base of the package's callbacks: a ``Callback`` of every installed Lightning namespace."""


class CheckpointIOBase(*TORCH_CHECKPOINT_IOS):
    """``TorchCheckpointIO`` of every installed Lightning namespace (base of ``AtomicCheckpointIO``)."""


def qualified(name: str) -> str:
    """``"callbacks.ModelCheckpoint"`` -> its ``class_path`` in the chosen namespace."""
    return f"{NAMESPACE}.{name}"
