"""The Frankle & Carbin setting, small: LeNet-300-100 on scikit-learn's handwritten digits.

Frankle & Carbin (ICLR 2019) found their first lottery tickets in LeNet-300-100, a fully connected
network 784 -> 300 -> 100 -> 10 trained on MNIST with Adam (lr 1.2e-3, batch 60). This example
keeps the network and the optimiser and swaps MNIST for ``sklearn.datasets.load_digits``: 1,797
8x8 greyscale digits that ship inside scikit-learn (no download), so the input layer is 64 wide
and one training run takes seconds on a CPU. It shows that ``lightning-slt experiment`` prunes any
LightningModule, not only the package's ``TranslationModule``: the pruning callbacks select every
``nn.Linear`` weight (64x300, 300x100, 100x10; biases are not pruned) by the package's default rule.

Run (from the repository root, so that ``examples.digits.lenet`` imports; needs
``pip install -e .[examples]`` for scikit-learn)::

    lightning-slt experiment --config examples/digits/experiment.yaml

A dense run alone, with the base config of every run of that experiment::

    lightning-slt fit --config examples/digits/base.yaml

The classes are referred to by ``class_path`` (``examples.digits.lenet.LeNet300100`` and
``examples.digits.lenet.DigitsDataModule``). They are plain ``pytorch_lightning`` classes, as a
user writes them; ``import lightning.pytorch as pl`` works the same (``lightning-slt`` runs in the
namespace the configured module subclasses).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import pytorch_lightning as pl

PIXELS = 64  # 8x8 images, flattened
CLASSES = 10
MAX_PIXEL = 16.0  # load_digits counts 0..16 dark cells per 4x4 block of the original 32x32 bitmap
STD_EPS = 1e-6  # a pixel whose training standard deviation is below this is constant there


class LinearWarmup:
    """LambdaLR factor: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then 1.

    A class, not a lambda, so that LambdaLR's ``state_dict`` saves its setting with the checkpoint.
    """

    def __init__(self, warmup_steps: int):
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        return 1.0 if step >= self.warmup_steps else (step + 1) / self.warmup_steps


class LeNet300100(pl.LightningModule):
    """LeNet-300-100 (Frankle & Carbin 2019, after LeCun et al. 1998) for 8x8 digits: 64 -> 300 -> 100 -> 10.

    Fully connected layers (``nn.Linear``, biases kept) with ReLU between them, cross-entropy on
    the logits, Adam at constant learning rate after an optional linear warm-up. Logs
    ``train/loss`` every step, ``val/loss`` and ``val/acc`` per validation, ``test/loss`` and
    ``test/acc`` on test. Accuracies are in percent (0-100), like BLEU in the translation runs.
    Deterministic given the seed (``seed_everything``): the weights are drawn from torch's global
    generator at construction.

    Args:
        hidden: widths of the hidden layers (Frankle & Carbin: 300, 100).
        lr: Adam's learning rate (Frankle & Carbin: 1.2e-3).
        warmup_steps: linear learning-rate warm-up over this many optimizer steps (0: none). The
            experiment runner sets it for every run, scaled with the run's length, as it does for
            ``TranslationModule``.
    """

    def __init__(self, hidden: list[int] = [300, 100], lr: float = 1.2e-3, warmup_steps: int = 0):  # noqa: B006 (jsonargparse reads the default)
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.save_hyperparameters()
        widths = [PIXELS, *hidden, CLASSES]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out))
        self.net = nn.Sequential(*layers)  # parameters net.0.*, net.2.*, net.4.*

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def _evaluate(self, batch, split: str) -> None:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = 100.0 * (logits.argmax(-1) == y).float().mean()
        # on_epoch with batch_size: the mean over the whole split, however it is batched
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, batch_size=len(y))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        # always a scheduler (factor 1 without warm-up), so every run's checkpoint has the same keys
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LinearWarmup(self.hparams.warmup_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


def split_indices(labels: np.ndarray, split_seed: int, val_size: int = 300, test_size: int = 300):
    """Stratified train / val / test indices (sorted): every digit in the same proportion in each split."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(labels))
    rest, test = train_test_split(everything, test_size=test_size, stratify=labels, random_state=split_seed)
    train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=split_seed)
    return np.sort(train), np.sort(val), np.sort(test)


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's 1,797 handwritten digits, split 1,197 / 300 / 300 (train / val / test).

    The split is stratified and fixed by ``split_seed`` alone: runs of different training seeds
    (and every pruning round) are compared on the same validation and test images. ``seed`` only
    orders the training batches, through the training DataLoader's own ``torch.Generator``, so
    batch order does not depend on what else drew from torch's global generator.

    Pixels are scaled to [0, 1] (divided by 16), then standardised per pixel with the *training*
    split's mean and standard deviation (no statistics of val or test leak into training); a
    pixel constant over the training images (std < 1e-6, e.g. the corners) is only centred.
    The whole data set is a few hundred kB of tensors: it lives in memory, ``num_workers`` is 0.

    Args:
        batch_size: training batch size (Frankle & Carbin: 60; 20 steps per epoch here).
        split_seed: seed of the stratified train/val/test split.
        seed: seed of the training batches' shuffle order.
    """

    def __init__(self, batch_size: int = 60, split_seed: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.split_seed = split_seed
        self.seed = seed
        self.train_set = self.val_set = self.test_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        images = images.astype(np.float64) / MAX_PIXEL
        self.indices = dict(zip(("train", "val", "test"), split_indices(labels, self.split_seed)))
        train = images[self.indices["train"]]
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std < STD_EPS, 1.0, std)
        self.mean = torch.from_numpy(mean).float()
        self.std = torch.from_numpy(std).float()

        def tensors(split: str) -> TensorDataset:
            index = self.indices[split]
            x = torch.from_numpy((images[index] - mean) / std).float()
            return TensorDataset(x, torch.from_numpy(labels[index]).long())

        self.train_set, self.val_set, self.test_set = tensors("train"), tensors("val"), tensors("test")

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator, num_workers=0)

    def _eval_loader(self, dataset: TensorDataset) -> DataLoader:
        # one batch per split: 300 images of 64 pixels are nothing to evaluate
        return DataLoader(dataset, batch_size=len(dataset), shuffle=False, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
