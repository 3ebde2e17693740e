"""PretrainedStart: a fit starts from a file's weights bit for bit, a resumed fit keeps its own,
and keep-sparsity fine-tuning (PretrainedStart + ConvergedMask(sparsity=None)) keeps every zero."""

import pytest
import torch
from torch import nn

from lightning_slt._lightning import Callback, LightningModule, Trainer
from lightning_slt.callbacks import ConvergedMask, PretrainedStart, WeightRewind


class Net(LightningModule):
    """A user's module: a frozen table it builds itself, two trainable matrices, biases."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.arange(12.0).reshape(3, 4), requires_grad=False)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.body(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 4, generator=g)
        return torch.utils.data.DataLoader(list(zip(x, (x[:, 0] > 0).long())), batch_size=8)


def _fit(callbacks, steps=4, ckpt_path=None, root=None, seed=0):
    torch.manual_seed(seed)
    module = Net()
    trainer = Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=root is not None, callbacks=callbacks,
                      default_root_dir=root)
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer


def _pretrained(tmp_path, sparsity=0.0):
    torch.manual_seed(123)
    weights = {name: torch.randn_like(t) for name, t in Net().state_dict().items() if name.startswith("body")}
    if sparsity:
        for name in ("body.0.weight", "body.2.weight"):
            w = weights[name]
            w[w.abs() < w.abs().flatten().kthvalue(int(sparsity * w.numel())).values] = 0.0
    path = tmp_path / "pretrained.pt"
    torch.save(weights, path)
    return path, weights


def test_the_fit_starts_from_the_file_bit_for_bit_and_theta0_is_it(tmp_path):
    path, weights = _pretrained(tmp_path)
    rewind = WeightRewind(step=0)
    module, _ = _fit([PretrainedStart(path), rewind], steps=2)
    assert set(rewind.snapshot) == {*weights, "table"}
    for name, value in weights.items():
        assert torch.equal(rewind.snapshot[name], value), name  # θ0 = the pretrained weights, bit for bit
    assert torch.equal(module.table, torch.arange(12.0).reshape(3, 4))  # not in the file: the module's own
    assert not torch.equal(module.body[0].weight, weights["body.0.weight"])  # and then it trained


def test_a_hugging_face_style_prefix_is_matched(tmp_path):
    _, weights = _pretrained(tmp_path)
    torch.save({f"model.{name}": value for name, value in weights.items()}, tmp_path / "prefixed.pt")
    rewind = WeightRewind(step=0)
    _fit([PretrainedStart(tmp_path / "prefixed.pt"), rewind], steps=1)
    assert all(torch.equal(rewind.snapshot[name], value) for name, value in weights.items())


def test_a_resumed_fit_keeps_its_checkpoint_weights(tmp_path):
    path, weights = _pretrained(tmp_path)
    _, trainer = _fit([PretrainedStart(path)], steps=3, root=str(tmp_path / "run"))
    ckpt = trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    recorder = _StartRecorder()
    _fit([PretrainedStart(path), recorder], steps=4, ckpt_path=ckpt, root=str(tmp_path / "run"))
    assert torch.equal(recorder.start["body.0.weight"], saved["body.0.weight"])  # step 3's weights, not the file's
    assert not torch.equal(recorder.start["body.0.weight"], weights["body.0.weight"])


class _StartRecorder(Callback):
    def on_train_start(self, trainer, pl_module):
        self.start = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_keep_sparsity_fine_tuning_keeps_every_zero_of_the_source(tmp_path):
    path, weights = _pretrained(tmp_path, sparsity=0.75)
    zeros = {name: weights[name] == 0 for name in ("body.0.weight", "body.2.weight")}
    assert [int(z.sum()) for z in zeros.values()] == [47, 23]  # 75 % of 64 and of 32, ties aside
    module, _ = _fit([PretrainedStart(path), ConvergedMask(source=str(path), sparsity=None)], steps=6)
    for name, zero in zeros.items():
        trained = module.state_dict()[name]
        assert torch.equal(trained[zero], torch.zeros(int(zero.sum()))), name  # every zero stays zero
        assert bool((trained[~zero] != weights[name][~zero]).any()), name  # the rest fine-tuned


def test_a_source_without_a_trainable_parameter_is_refused_naming_it(tmp_path):
    _, weights = _pretrained(tmp_path)
    del weights["body.2.weight"]
    torch.save(weights, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"no weights for 1 of the module's 4 trainable parameters: \['body.2.weight'\]"):
        _fit([PretrainedStart(tmp_path / "partial.pt")], steps=1)


def test_a_source_of_other_shapes_is_refused(tmp_path):
    _, weights = _pretrained(tmp_path)
    weights["body.0.weight"] = torch.zeros(16, 5)
    torch.save(weights, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"'body.0.weight' has shape \(16, 5\), the model's is \(16, 4\)"):
        _fit([PretrainedStart(tmp_path / "other.pt")], steps=1)


def test_a_missing_source_is_refused_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _fit([PretrainedStart(tmp_path / "nothing.pt")], steps=1)
