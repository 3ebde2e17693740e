"""Models we did not write, at tiny sizes with random weights (nothing downloaded): Hugging Face
Marian and Pegasus (frozen sinusoidal position tables), and a LightningModule that trains one.
A test that builds one is skipped where ``transformers`` is not installed."""

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

POSITIONS = ("model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight")
SIZES = dict(vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
             decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
             pad_token_id=0, decoder_start_token_id=0)


def marian(seed: int = 0) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    return transformers.MarianMTModel(transformers.MarianConfig(**SIZES))


def pegasus(seed: int = 0) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    return transformers.PegasusForConditionalGeneration(transformers.PegasusConfig(**SIZES))


class Seq2Seq(pl.LightningModule):
    """A Hugging Face seq2seq model as the ``model`` attribute, trained on fixed random tokens."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.model(input_ids=x, labels=y).loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x, y = torch.randint(1, 100, (8, 6), generator=g), torch.randint(1, 100, (8, 5), generator=g)
        return DataLoader(TensorDataset(x, y), batch_size=4)
