"""GradualMagnitudePruning on torch's own nn.Transformer, where Lightning's ModelPruning crashes.

nn.MultiheadAttention reads ``in_proj_weight`` and ``out_proj.weight`` directly instead of
calling its submodules, so torch.nn.utils.prune's forward pre-hooks never refresh them and the
second backward goes through a freed graph. Our masks are applied in place after the optimizer
step, so nothing about the forward pass changes.
"""

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelPruning
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_slt import GradualMagnitudePruning
from lightning_slt.pruning import prunable_parameters

from .tiny import make_trainer


class TorchTransformerModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 16)
        self.transformer = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 32)

    def training_step(self, batch, batch_idx):
        src, tgt = batch
        hidden = self.transformer(self.embed(src), self.embed(tgt))
        return F.cross_entropy(self.head(hidden).flatten(0, 1), tgt.flatten())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randint(0, 32, (16, 6), generator=g), torch.randint(0, 32, (16, 5), generator=g))
        return DataLoader(data, batch_size=4)


def test_gradual_pruning_reaches_target_in_every_attention_tensor():
    pl.seed_everything(0, verbose=False)
    module = TorchTransformerModule()
    make_trainer(12, [GradualMagnitudePruning(0.75, end_step=8, frequency=2)]).fit(module)
    params = prunable_parameters(module)
    attention = [n for n in params if "in_proj_weight" in n or "out_proj.weight" in n]
    assert len(attention) == 6  # enc self, dec self, dec cross: in_proj + out_proj each
    for name in attention:
        assert int((params[name] == 0).sum()) == round(0.75 * params[name].numel()), name


def test_lightning_model_pruning_crashes_on_the_same_model():
    pl.seed_everything(0, verbose=False)
    module = TorchTransformerModule()
    pruning = ModelPruning("l1_unstructured", amount=0.5, use_global_unstructured=True)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        make_trainer(-1, [pruning], max_epochs=3).fit(module)
