"""examples/marian: Hugging Face's MarianMTModel as a user's LightningModule on real Multi30k.

A tiny model trains a few steps with the package's TranslationDataModule and logs BLEU; the
frozen sinusoid position tables stay out of training and out of the package's default pruning
selection; ``save_pretrained`` round-trips every weight bit for bit, and its file's keys are the
module's ``state_dict`` keys less the prefix ``model.``. Budget: < 30 s.
"""

import pytest
import torch

pytest.importorskip("transformers", reason="the examples extras install transformers: pip install -e .[examples]")

from transformers import MarianMTModel

from examples.marian.marian import MarianTranslation, WarmupInverseSqrt
from lightning_slt._lightning import pl
from lightning_slt.data import TranslationDataModule

TINY = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "attention_heads": 2, "ffn_dim": 64,
        "max_positions": 128, "max_new_tokens": 8, "lr": 3e-3, "warmup_steps": 2}
POSITION_TABLES = {"model.model.encoder.embed_positions.weight", "model.model.decoder.embed_positions.weight"}
TIED_ALIASES = {"model.model.encoder.embed_tokens.weight", "model.model.decoder.embed_tokens.weight",
                "model.lm_head.weight"}  # the same tensor as model.model.shared.weight


@pytest.fixture(scope="module")
def tiny_data(data_root, tmp_path_factory) -> TranslationDataModule:
    return TranslationDataModule("multi30k", "en", "de", data_root=str(data_root),
                                 cache_dir=str(tmp_path_factory.mktemp("spm")), vocab_size=300, train_subset=256,
                                 valid_subset=16, test_subset=16, max_tokens=512, max_len=100, max_positions=128)


def _trainer(tmp_path, **overrides) -> "pl.Trainer":
    options = {"accelerator": "cpu", "devices": 1, "max_steps": 4, "val_check_interval": 4,
               "check_val_every_n_epoch": None, "limit_val_batches": 1, "limit_test_batches": 1,
               "num_sanity_val_steps": 0, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False, "use_distributed_sampler": False, "default_root_dir": str(tmp_path)}
    options.update(overrides)
    return pl.Trainer(**options)


def test_trains_logs_bleu_and_reloads_from_checkpoint(tiny_data, tmp_path) -> None:
    pl.seed_everything(0, verbose=False)
    module = MarianTranslation(**TINY)  # vocab_size from the data module, in configure_model
    assert module.model is None
    trainer = _trainer(tmp_path)
    trainer.fit(module, datamodule=tiny_data)
    assert trainer.global_step == 4
    assert module.hparams.vocab_size == module.hparams_initial.vocab_size == tiny_data.vocab_size
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/bleu", "val/chrf"} <= set(metrics)
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/loss"])
    assert 0.0 <= float(metrics["val/bleu"]) <= 100.0 and float(metrics["val/chrf"]) >= 0.0
    # the sinusoid tables went through four updates untouched (no gradient, not in the optimizer)
    for encoder_or_decoder in (module.model.model.encoder, module.model.model.decoder):
        table = encoder_or_decoder.embed_positions
        assert torch.equal(table.weight, table.create_weight())
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert {name for name, p in module.named_parameters() if id(p) not in optimized} == POSITION_TABLES

    tested = trainer.test(module, datamodule=tiny_data, verbose=False)[0]
    assert {"test/loss", "test/bleu", "test/chrf"} <= set(tested)

    # a checkpoint holds the vocabulary size used, so load_from_checkpoint rebuilds the model in __init__
    trainer.save_checkpoint(tmp_path / "tiny.ckpt")
    reloaded = MarianTranslation.load_from_checkpoint(tmp_path / "tiny.ckpt", map_location="cpu")
    assert reloaded.hparams.vocab_size == tiny_data.vocab_size
    saved, loaded = module.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[key], loaded[key]) for key in saved)


def test_position_tables_are_frozen_parameters_and_embeddings_are_tied() -> None:
    module = MarianTranslation(vocab_size=50, **TINY)
    named = dict(module.named_parameters())
    frozen = {name: p for name, p in named.items() if not p.requires_grad}
    assert set(frozen) == POSITION_TABLES  # parameters (not buffers), requires_grad=False, 2-D
    assert all(p.shape == (TINY["max_positions"], TINY["d_model"]) for p in frozen.values())
    assert [name for name, _ in module.named_buffers()] == ["model.final_logits_bias"]
    optimizer = module.configure_optimizers()["optimizer"]
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(named) - 2
    # one embedding matrix: encoder and decoder inputs and the output layer; named_parameters lists it once
    shared = module.model.model.shared.weight
    assert all(module.get_parameter(alias) is shared for alias in TIED_ALIASES)
    assert not TIED_ALIASES & set(named) and "model.model.shared.weight" in named


def test_save_pretrained_round_trips_bit_for_bit(tmp_path) -> None:
    from safetensors import safe_open

    module = MarianTranslation(vocab_size=50, **TINY)
    with torch.no_grad():  # make the buffer and the pad row non-trivial, so that losing them would show
        module.model.final_logits_bias.normal_()
        module.model.model.shared.weight[0].normal_()
    module.model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json"} <= {path.name for path in tmp_path.iterdir()}
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as file:
        stored = set(file.keys())
    state = module.state_dict()
    # the file's keys are the LightningModule's less "model.": all but the position tables (computed
    # again on load) and the tied aliases of model.shared.weight
    assert {f"model.{key}" for key in stored} == set(state) - POSITION_TABLES - TIED_ALIASES

    loaded = MarianMTModel.from_pretrained(tmp_path)
    assert loaded.config.pad_token_id == 0 and loaded.config.decoder_start_token_id == 1
    assert loaded.config.eos_token_id == 2
    reloaded = loaded.state_dict()
    assert {f"model.{key}" for key in reloaded} == set(state)
    assert all(torch.equal(reloaded[key], state[f"model.{key}"]) for key in reloaded)
    assert loaded.lm_head.weight is loaded.model.shared.weight  # still tied after loading

    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tgt = torch.tensor([[1, 10, 11], [1, 12, 0]])
    module.eval(), loaded.eval()
    with torch.no_grad():
        expected = module(src, tgt)
        got = loaded(input_ids=src, attention_mask=src.ne(0), decoder_input_ids=tgt,
                     decoder_attention_mask=tgt.ne(0)).logits
    assert torch.equal(expected, got)


def test_warm_up_then_inverse_square_root() -> None:
    factor = WarmupInverseSqrt(4)
    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(15) == pytest.approx(0.5)  # sqrt(4 / 16)
    assert WarmupInverseSqrt(0)(0) == WarmupInverseSqrt(0)(1000) == 1.0


def test_default_pruning_selection_skips_the_position_tables() -> None:
    from lightning_slt.pruning import prunable_parameters

    module = MarianTranslation(vocab_size=50, **TINY)
    selected = set(prunable_parameters(module))
    assert not selected & POSITION_TABLES
    # every Linear weight of the layers, and the shared embedding once (it is the output layer too)
    linear = {f"{name}.weight" for name, child in module.named_modules() if isinstance(child, torch.nn.Linear)}
    assert selected == (linear - {"model.lm_head.weight"}) | {"model.model.shared.weight"}
