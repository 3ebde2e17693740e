"""GradualMagnitudePruning: schedule positions, exact counts, zeros under Adam, bad input, and
torch's own nn.Transformer, where Lightning's ModelPruning crashes."""

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelPruning
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_slt import GradualMagnitudePruning
from lightning_slt.pruning import cubic_sparsity, prunable_parameters

from .tiny import Probe, TinyModule, fresh_module, make_trainer


def test_sparsity_follows_the_cubic_schedule_with_exact_counts_and_zeros_every_step():
    module = fresh_module()
    probe = Probe()
    gmp = GradualMagnitudePruning(final_sparsity=0.8, begin_step=2, end_step=14, frequency=4)
    make_trainer(20, [gmp, probe]).fit(module)
    sizes = {n: p.numel() for n, p in prunable_parameters(module).items()}
    # pruning steps 2, 6, 10, 14 (and 14 = end); counts held in between
    for step, expected_step in [(1, None), (2, 2), (5, 2), (6, 6), (9, 6), (10, 10), (13, 10), (14, 14), (20, 14)]:
        counts = probe.sparsity_at[step]
        for name, n in sizes.items():
            target = 0.0 if expected_step is None else cubic_sparsity(expected_step, 0.8, 0.0, 2, 14)
            assert counts.get(name, 0) == round(target * n), (step, name)
    final = {n: int((p == 0).sum()) for n, p in prunable_parameters(module).items()}
    assert final == {n: round(0.8 * size) for n, size in sizes.items()}


def test_defaults_come_from_max_steps_and_initial_sparsity_prunes_at_step_zero():
    module = fresh_module()
    probe = Probe()
    gmp = GradualMagnitudePruning(final_sparsity=0.9, initial_sparsity=0.6)
    make_trainer(50, [gmp, probe]).fit(module)
    assert (gmp._end_step, gmp._frequency) == (40, 1)
    weight = prunable_parameters(module)["net.0.weight"]
    assert probe.start is not None
    assert int((probe.start["net.0.weight"] == 0).sum()) == round(0.6 * weight.numel())
    assert gmp.state_dict() == {"last_pruned_step": 40, "sparsity": 0.9}


def test_global_scope_prunes_exact_total():
    module = fresh_module()
    make_trainer(6, [GradualMagnitudePruning(0.7, end_step=4, frequency=2, scope="global")]).fit(module)
    params = prunable_parameters(module)
    total = sum(p.numel() for p in params.values())
    assert sum(int((p == 0).sum()) for p in params.values()) == round(0.7 * total)


def test_works_under_bf16_mixed_precision_and_torch_compile():
    module = fresh_module(compile=True)
    make_trainer(6, [GradualMagnitudePruning(0.5, end_step=4, frequency=2)], precision="bf16-mixed").fit(module)
    for name, p in prunable_parameters(module).items():
        assert int((p == 0).sum()) == round(0.5 * p.numel()), name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final_sparsity": 1.0}, r"final_sparsity must be a fraction in \[0, 1\)"),
        ({"final_sparsity": -0.1}, "final_sparsity"),
        ({"final_sparsity": 0.5, "initial_sparsity": 0.6}, "must not exceed"),
        ({"final_sparsity": 0.5, "begin_step": 10, "end_step": 5}, r"end_step \(5\) must not precede begin_step \(10\)"),
        ({"final_sparsity": 0.5, "scope": "globl"}, "scope must be"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradualMagnitudePruning(**kwargs)


def test_schedule_past_max_steps_fails_before_training():
    module = fresh_module()
    before = {n: p.clone() for n, p in module.named_parameters()}
    trainer = make_trainer(10, [GradualMagnitudePruning(0.5, end_step=20, frequency=5)])
    with pytest.raises(ValueError, match=r"end_step \(20\) is after trainer.max_steps \(10\)"):
        trainer.fit(module)
    assert trainer.global_step == 0
    assert all(torch.equal(before[n], p) for n, p in module.named_parameters())


def test_schedule_ending_after_max_steps_is_refused_at_setup_with_the_fix():
    with pytest.raises(ValueError) as info:
        make_trainer(10, [GradualMagnitudePruning(0.5, end_step=12, frequency=2)]).fit(TinyModule())
    assert "end_step (12) is after trainer.max_steps (10)" in str(info.value)
    assert "set end_step <= 10" in str(info.value) and "raise trainer.max_steps to at least 12" in str(info.value)


# ----------------------------------------------------------------------------- torch's nn.Transformer
# nn.MultiheadAttention reads ``in_proj_weight`` and ``out_proj.weight`` directly instead of
# calling its submodules, so torch.nn.utils.prune's forward pre-hooks never refresh them and the
# second backward goes through a freed graph. Our masks are applied in place after the optimizer
# step, so nothing about the forward pass changes.


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
