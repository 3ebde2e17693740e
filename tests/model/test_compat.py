"""A tokenizer or checkpoint that does not fit the module is refused naming what differs and the fix."""

import hashlib
from types import SimpleNamespace

import pytest
import torch

from lightning_slt.data.tokenizer import Tokenizer

from lightning_slt.artifacts.keys import TOKENIZER_KEY
from lightning_slt.model.compat import check_checkpoint_fits, check_tokenizer_fits, require_tokenizer
from lightning_slt.model.config import TransformerConfig

PROTO = b"a sentencepiece model"


def _tokenizer(vocab_size=40, ids=(0, 1, 2), proto=PROTO, path=None):
    pad, bos, eos = ids
    tokenizer = SimpleNamespace(vocab_size=vocab_size, pad_id=pad, bos_id=bos, eos_id=eos, model_proto=proto,
                                sha256=hashlib.sha256(proto).hexdigest(), path=path)
    tokenizer.check_trained_with = lambda saved, where: Tokenizer.check_trained_with(tokenizer, saved, where)
    return tokenizer


def _hparams(**overrides):
    return {"vocab_size": 40, "d_model": 8, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 16,
            "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0, "pre_norm": True,
            "max_positions": 64, **overrides}


def test_require_tokenizer_says_how_to_attach_one():
    tokenizer = _tokenizer()
    assert require_tokenizer(tokenizer) is tokenizer
    with pytest.raises(RuntimeError, match=r"no tokenizer attached: .* call set_tokenizer\(datamodule.tokenizer\) first"):
        require_tokenizer(None)


def test_a_tokenizer_must_match_the_vocabulary_the_ids_and_the_attached_one():
    config = TransformerConfig(vocab_size=40, d_model=8, n_heads=2)
    check_tokenizer_fits(config, _tokenizer(), None)
    check_tokenizer_fits(config, _tokenizer(), _tokenizer())  # the same model again: fine
    with pytest.raises(ValueError, match="tokenizer has vocab_size=41 but the model has vocab_size=40; build both"):
        check_tokenizer_fits(config, _tokenizer(vocab_size=41), None)
    with pytest.raises(ValueError, match=r"tokenizer \(pad, bos, eos\) ids \(0, 2, 1\) differ from the model's \(0, 1, 2\)"):
        check_tokenizer_fits(config, _tokenizer(ids=(0, 2, 1)), None)
    with pytest.raises(ValueError, match="the module already holds a different sentencepiece model"):
        check_tokenizer_fits(config, _tokenizer(), _tokenizer(proto=b"another model"))


def test_a_checkpoint_of_another_vocabulary_names_both_sizes_and_the_tokenizer_file():
    mine = {"model.embed.weight": torch.zeros(40, 8)}
    checkpoint = {"state_dict": {"model.embed.weight": torch.zeros(50, 8)}}  # no hyper-parameters: the embedding says
    with pytest.raises(ValueError, match=r"^old.ckpt was trained with a vocabulary of 50 sentencepiece pieces, but this "
                                         r"model has 40 \(the size of the data's tokenizer /data/spm.model\)"):
        check_checkpoint_fits(checkpoint, _hparams(), mine, _tokenizer(path="/data/spm.model"), "old.ckpt")


def test_a_checkpoint_of_another_sentencepiece_model_names_both_hashes():
    mine = {"w": torch.zeros(2)}
    other = torch.frombuffer(bytearray(b"other model"), dtype=torch.uint8)
    checkpoint = {"hyper_parameters": _hparams(), "state_dict": {"w": torch.zeros(2)}, TOKENIZER_KEY: other}
    saved = hashlib.sha256(b"other model").hexdigest()[:12]
    ours = hashlib.sha256(PROTO).hexdigest()[:12]
    with pytest.raises(ValueError, match=f"x.ckpt was trained with another sentencepiece model \\(sha256 {saved}\\) "
                                         f"than the one the data uses \\({ours}\\): the same ids would mean other pieces"):
        check_checkpoint_fits(checkpoint, _hparams(), mine, _tokenizer(), "x.ckpt")
    check_checkpoint_fits(checkpoint, _hparams(), mine, None, "x.ckpt")  # no tokenizer known: not compared


def test_a_checkpoint_of_other_shapes_names_the_tensors_and_the_settings_that_differ():
    mine = {"a": torch.zeros(4), "b": torch.zeros(2)}
    checkpoint = {"hyper_parameters": _hparams(d_model=16, n_heads=4), "state_dict": {"a": torch.zeros(3), "b": torch.zeros(2)}}
    with pytest.raises(ValueError, match=r"^c.ckpt holds a model of other shapes: a \(3,\) there, \(4,\) here \(its "
                                         r"settings: d_model=16 \(here 8\), n_heads=4 \(here 2\)\)\. Build the model"):
        check_checkpoint_fits(checkpoint, _hparams(), mine, None, "c.ckpt")
    missing = {"hyper_parameters": _hparams(), "state_dict": {"a": torch.zeros(4)}}
    with pytest.raises(ValueError, match=r"c.ckpt holds a model of other shapes: no \['b'\]\. Build"):
        check_checkpoint_fits(missing, _hparams(), mine, None, "c.ckpt")
    check_checkpoint_fits({"hyper_parameters": _hparams(), "state_dict": dict(mine)}, _hparams(), mine, None, "c.ckpt")
