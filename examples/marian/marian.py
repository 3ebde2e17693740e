"""A Transformer we did not write: Hugging Face's ``MarianMTModel`` as a user's LightningModule.

``MarianTranslation`` wraps ``transformers.MarianMTModel`` (the architecture of the OPUS-MT
models), built from a ``MarianConfig`` with random weights (nothing is downloaded), and trains it
on Multi30k en->de with the package's ``TranslationDataModule``. It shows that the package's
pruning runs work on a model whose code lives in another library: the module is an ordinary
LightningModule with a ``self.model`` attribute, not a ``TranslationModule``.

The data module's ids are the model's ids: pad 0, bos 1 (the decoder start), eos 2, unk 3, one
joint sentencepiece vocabulary for both sides, so the model shares one embedding matrix between
encoder, decoder and output layer (Marian's default ``share_encoder_decoder_embeddings`` and
``tie_word_embeddings``: ``model.shared.weight`` is also ``encoder.embed_tokens``,
``decoder.embed_tokens`` and ``lm_head``). Validation and test decode greedily with
``MarianMTModel.generate`` and score with sacrebleu.

Run (from the repository root, so that ``examples.marian.marian`` imports; needs transformers:
``pip install -e .[examples]``)::

    LIGHTNING_SLT_DATA=/path/to/data lightning-slt fit --config examples/marian/base.yaml

or from Python::

    import pytorch_lightning as pl
    from lightning_slt.data import TranslationDataModule
    from examples.marian.marian import MarianTranslation

    data = TranslationDataModule("multi30k", "en", "de", vocab_size=8000, max_positions=256)
    model = MarianTranslation(warmup_steps=1000)  # vocab_size from the data module, in configure_model
    pl.Trainer(max_steps=20000, use_distributed_sampler=False).fit(model, datamodule=data)

Lightning namespace: a plain ``pytorch_lightning`` class, the package's default namespace, which
``TranslationDataModule`` subclasses too (a Trainer of one namespace does not recognise the
other's data modules; a ``lightning.pytorch`` module pairs with ``TranslationDataModule`` under
``LIGHTNING_SLT_NAMESPACE=lightning.pytorch``, which ``lightning-slt`` sets itself).

Two things about the Hugging Face model that matter to pruning and to loading its weights
(transformers 5.x):

* ``MarianSinusoidalPositionalEmbedding`` is an ``nn.Embedding`` built with ``_freeze=True``: its
  fixed sinusoid table is an ``nn.Parameter`` with ``requires_grad=False``, shape
  ``(max_positions, d_model)``, listed by ``named_parameters()`` as
  ``model.encoder.embed_positions.weight`` and ``model.decoder.embed_positions.weight``. It is not
  a buffer. ``save_pretrained`` leaves it out (``_keys_to_ignore_on_save``) and ``from_pretrained``
  computes it again. The optimizer here gets only trainable parameters.
* ``final_logits_bias`` (1, vocab) is a buffer (zeros, never trained), added to the logits.
* ``self.model.save_pretrained(folder)`` writes ``model.safetensors`` whose keys are this module's
  ``state_dict`` keys less the leading ``model.`` (``model.encoder.layers.0.fc1.weight`` here is
  ``model.model.encoder.layers.0.fc1.weight`` in the module), ``final_logits_bias`` included,
  except the two position tables and the three aliases of ``model.shared.weight``
  (``model.encoder.embed_tokens.weight``, ``model.decoder.embed_tokens.weight``,
  ``lm_head.weight``), which the module's ``state_dict`` lists as well.

Measured (1 CPU thread, shared 2-core machine): d_model 128, 2+2 layers, 4 heads, ffn 512, vocab
3000, the first 5,000 training pairs, max_tokens 2048, lr 1e-3 with 100 warm-up steps; greedy
val/bleu on the first 100 validation pairs 0.2, 0.7, 1.8, 5.0, 6.9, 9.9 after 100 ... 600 steps
(234 s for the whole fit, validations included).
"""

from __future__ import annotations

import math
from typing import Any

import sacrebleu
import torch
from torch.nn import functional as F

import pytorch_lightning as pl

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # lightning_slt.data.tokenizer's special ids


class WarmupInverseSqrt:
    """LambdaLR factor: linear warm-up to 1 over ``warmup_steps`` optimizer steps, then
    ``sqrt(warmup_steps / step)`` (Vaswani et al.'s inverse square root decay); constant 1 when
    ``warmup_steps`` is 0. ``step`` counts from 1 (the first update uses ``1 / warmup_steps``).

    A class, not a lambda, so that LambdaLR's ``state_dict`` saves its setting with the checkpoint.
    """

    def __init__(self, warmup_steps: int):
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        step += 1
        return min(step / self.warmup_steps, math.sqrt(self.warmup_steps / step))


class MarianTranslation(pl.LightningModule):
    """``MarianMTModel`` (encoder-decoder, post-norm, sinusoidal positions) trained with label
    smoothing and Adam; greedy decoding and BLEU/chrF on validation and test.

    Logs ``train/loss`` every step; ``val/loss``, ``val/bleu``, ``val/chrf`` per validation;
    ``test/loss``, ``test/bleu``, ``test/chrf`` on test. The losses are the label-smoothed token
    cross entropy (padding ignored), averaged over batches weighted by sentences. BLEU and chrF are
    sacrebleu's corpus scores (default settings, 13a tokenization) of the detokenized greedy
    hypotheses against the raw references (``ref_text``), in order of the split's lines.

    Under DDP each rank decodes its shard; the hypotheses are gathered with
    ``torch.distributed.all_gather_object`` and deduplicated by line ``index`` before scoring, so
    every rank logs the same corpus score.

    Args:
        vocab_size: size of the joint vocabulary. None: taken from the Trainer's data module
            (``datamodule.vocab_size``) when the model is built in ``configure_model``; the value
            used is then stored in ``hparams`` so that a checkpoint rebuilds the same model.
        d_model: model width (embeddings, attention).
        encoder_layers, decoder_layers: number of layers.
        attention_heads: heads per attention block (encoder and decoder).
        ffn_dim: inner width of the feed-forward blocks.
        dropout: dropout on residual branches and embeddings (Marian's attention and activation
            dropout stay 0).
        max_positions: length of the sinusoid position tables: the longest source (ids + eos) and
            decoder input the model accepts. Set the data module's ``max_positions`` to the same.
        label_smoothing: label smoothing of the training (and reported evaluation) loss.
        lr: Adam's peak learning rate (betas 0.9, 0.98; eps 1e-9).
        warmup_steps: linear warm-up over this many optimizer steps, then inverse square root
            decay (``WarmupInverseSqrt``); 0: constant ``lr``. The experiment runner sets it.
        max_new_tokens: longest greedy hypothesis, in pieces (eos included); capped at
            ``max_positions - 1``.
    """

    def __init__(
        self,
        vocab_size: int | None = None,
        d_model: int = 256,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        attention_heads: int = 4,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        max_positions: int = 256,
        label_smoothing: float = 0.1,
        lr: float = 5e-4,
        warmup_steps: int = 0,
        max_new_tokens: int = 64,
    ) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if d_model % attention_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by attention_heads ({attention_heads})")
        if max_new_tokens < 1 or max_positions < 2:
            raise ValueError(f"need max_new_tokens >= 1 and max_positions >= 2, got {max_new_tokens}, {max_positions}")
        self.save_hyperparameters()
        self.model = None  # the MarianMTModel, built in configure_model unless vocab_size is known now
        self._eval_records: list[tuple[int, str, str]] = []  # (line index, hypothesis, reference)
        if vocab_size is not None:
            self._build(vocab_size)

    # ------------------------------------------------------------------ the Hugging Face model

    def marian_config(self, vocab_size: int):
        """The ``MarianConfig`` of this module's settings, with the data module's special ids."""
        from transformers import MarianConfig

        hp = self.hparams
        return MarianConfig(
            vocab_size=vocab_size,
            d_model=hp.d_model,
            encoder_layers=hp.encoder_layers,
            decoder_layers=hp.decoder_layers,
            encoder_attention_heads=hp.attention_heads,
            decoder_attention_heads=hp.attention_heads,
            encoder_ffn_dim=hp.ffn_dim,
            decoder_ffn_dim=hp.ffn_dim,
            dropout=hp.dropout,
            max_position_embeddings=hp.max_positions,
            pad_token_id=PAD_ID,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
            decoder_start_token_id=BOS_ID,
            forced_eos_token_id=EOS_ID,  # MarianConfig's default (0) would force *pad* at max length here
            scale_embedding=True,  # embeddings * sqrt(d_model), as in the OPUS-MT models
            share_encoder_decoder_embeddings=True,  # one joint vocabulary: one embedding matrix ...
            tie_word_embeddings=True,  # ... which is also the output layer
        )

    def _build(self, vocab_size: int) -> None:
        from transformers import MarianMTModel

        self.model = MarianMTModel(self.marian_config(vocab_size))
        # The size used, in the hyperparameters saved with checkpoints (load_from_checkpoint then builds
        # in __init__) and in those the loggers get: Lightning refuses to log a module's and a data
        # module's hyperparameters of the same name (vocab_size) with different values (None and 8000).
        self.hparams.vocab_size = vocab_size
        if getattr(self, "_hparams_initial", None) is not None:
            self._hparams_initial["vocab_size"] = vocab_size

    def configure_model(self) -> None:
        """Build the model once, with the data module's vocabulary size when ``vocab_size`` is None."""
        if self.model is not None:
            return
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        vocab_size = getattr(datamodule, "vocab_size", None)
        if vocab_size is None:
            raise ValueError("MarianTranslation(vocab_size=None) takes the vocabulary size from the Trainer's data "
                             "module, but there is none with a vocab_size: pass vocab_size, or fit with datamodule=")
        self._build(int(vocab_size))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of the next target piece, teacher-forced: ``src`` (B, S), ``tgt_in`` (B, T)."""
        return self.model(input_ids=src, attention_mask=src.ne(PAD_ID), decoder_input_ids=tgt_in,
                          decoder_attention_mask=tgt_in.ne(PAD_ID)).logits

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logits = self(batch["src"], batch["tgt_in"])  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD_ID,
                               label_smoothing=self.hparams.label_smoothing)

    @torch.no_grad()
    def translate_ids(self, src: torch.Tensor) -> torch.Tensor:
        """Greedy hypotheses (B, L) for ``src`` (B, S): decoder start (bos), pieces, eos, then pad."""
        max_new = min(self.hparams.max_new_tokens, self.hparams.max_positions - 1)
        return self.model.generate(input_ids=src, attention_mask=src.ne(PAD_ID), num_beams=1, do_sample=False,
                                   max_new_tokens=max_new)

    # ------------------------------------------------------------------ Lightning hooks

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=batch["src"].size(0))
        return loss

    def _evaluation_step(self, batch: dict[str, Any], split: str) -> None:
        size = batch["src"].size(0)
        self.log(f"{split}/loss", self._loss(batch), on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        hypotheses = self._tokenizer().decode(self.translate_ids(batch["src"]).tolist())
        self._eval_records += zip(batch["index"].tolist(), hypotheses, batch["ref_text"])

    def _tokenizer(self):
        tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        if tokenizer is None:
            raise ValueError("MarianTranslation decodes with the Trainer's data module's tokenizer: evaluate with "
                             "datamodule=TranslationDataModule(...)")
        return tokenizer

    def _finish_evaluation(self, split: str) -> None:
        records, self._eval_records = self._eval_records, []
        world_size = self.trainer.world_size
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * world_size
            torch.distributed.all_gather_object(gathered, records)
            records = [record for rank_records in gathered for record in rank_records]
        unique = [record for _, record in sorted({record[0]: record for record in records}.items())]
        if not unique:  # e.g. limit_val_batches=0
            return
        hypotheses = [hypothesis for _, hypothesis, _ in unique]
        references = [[reference for _, _, reference in unique]]
        bleu = sacrebleu.metrics.BLEU().corpus_score(hypotheses, references).score
        chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, references).score
        # every rank holds the same records, hence the same scores: no sync needed
        self.log(f"{split}/bleu", bleu, prog_bar=True)
        self.log(f"{split}/chrf", chrf)

    def on_validation_epoch_start(self) -> None:
        self._eval_records = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._eval_records = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def configure_optimizers(self):
        # the frozen sinusoid tables (requires_grad=False) stay out of the optimizer
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=self.hparams.lr, betas=(0.9, 0.98), eps=1e-9)
        # always a scheduler (factor 1 without warm-up), so every run's checkpoint has the same keys
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupInverseSqrt(self.hparams.warmup_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
