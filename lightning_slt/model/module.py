"""``TranslationModule``: the LightningModule that trains, evaluates and runs the Transformer.

One class owns what a translation run needs beyond the network: the label-smoothed loss on
non-padding tokens, the optimizer and learning-rate schedule, corpus BLEU/chrF/TER on
detokenized output (gathered from every DDP rank), the test outputs on disk, a checkpoint that
carries its sentencepiece model (so it can translate on its own) and the RNG states that
Lightning does not save (so a killed run resumes bit-identically).
"""

import hashlib
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from lightning_slt._lightning import TrainerFn, pl, rank_zero_info
from lightning_slt._runtime import destroy_gloo_group_at_exit
from lightning_slt.atomic import check_not_inputs, write_text
from lightning_slt.data.tokenizer import Tokenizer, truncation_warning
from lightning_slt.model.loss import label_smoothed_cross_entropy
from lightning_slt.model.metrics import TranslationScores, score_translations
from lightning_slt.model.presets import get_preset
from lightning_slt.model.schedules import (
    LRScheduleName,
    build_lr_scheduler,
    check_schedule_args,
)
from lightning_slt.model.search import beam_search, greedy_search
from lightning_slt.model.transformer import Transformer, TransformerConfig

# Checkpoint keys written by ``on_save_checkpoint`` (never rename: old checkpoints use them).
from lightning_slt.artifacts.keys import RNG_KEY, TOKENIZER_KEY  # the checkpoint's keys, one place

# Fields shared by TranslationModule's arguments and TransformerConfig: the architecture, which a
# checkpoint fixes (the CLI takes them from --ckpt_path).
ARCHITECTURE_ARGUMENTS = ("d_model", "n_heads", "encoder_layers", "decoder_layers", "d_ff", "dropout",
                          "attention_dropout", "activation_dropout", "pre_norm", "max_positions")


def rng_states() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python ``random`` states, in types ``torch.load`` accepts
    with ``weights_only=True`` (tensors, ints, floats, tuples)."""
    np_state = np.random.get_state()  # ('MT19937', keys uint32 (624,), pos, has_gauss, cached)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_cached_gaussian": float(np_state[4]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned (CUDA only when saved and present)."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    keys = states["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, states["numpy_pos"], states["numpy_has_gauss"],
                         states["numpy_cached_gaussian"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _gather_objects(records: list, world_size: int) -> list:
    """Concatenate every rank's ``records`` (same order on every rank)."""
    if world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return list(records)
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, records)
    return [record for rank_records in gathered for record in rank_records]


class TranslationModule(pl.LightningModule):
    """Encoder-decoder Transformer for translation, trained with label-smoothed cross entropy.

    Every hyper-parameter is a flat constructor argument so that a LightningCLI YAML sets each
    one (``model.init_args`` or ``model:``); ``save_hyperparameters`` stores them all, so
    ``TranslationModule.load_from_checkpoint(path)`` rebuilds the model, and the checkpoint
    also holds the sentencepiece model, so ``translate`` works without the data.

    The loss is computed only on non-padding target positions: the decoder's hidden states are
    selected first and projected to the vocabulary afterwards (sum over tokens / number of
    tokens). Validation decodes with ``val_beam_size`` (1 = greedy), test and ``translate``
    with ``beam_size``; scores are sacreBLEU corpus BLEU, chrF and TER of the detokenized
    output against the raw references, computed once over the whole split after gathering
    ``(index, hypothesis)`` pairs from all DDP ranks and dropping duplicates by index.

    Exact resume: Lightning saves no RNG state, so the checkpoint stores torch/CUDA, numpy and
    python ``random`` states and ``on_train_start`` restores them after everything else. For
    the same reason validation during ``fit`` is RNG-neutral: the states after the last
    training step are put back when validation ends (and are the ones a checkpoint taken
    during validation stores), so validation frequency never changes the training trajectory.

    Args:
        vocab_size: shared source/target vocabulary size; the CLI links it from
            ``data.vocab_size``.
        d_model: model width (paper: 512).
        n_heads: attention heads; must divide ``d_model``.
        encoder_layers: encoder depth (paper: 6).
        decoder_layers: decoder depth (paper: 6).
        d_ff: feed-forward inner width (paper: 2048).
        dropout: dropout on embeddings and sublayer outputs.
        attention_dropout: dropout on attention weights (> 0 is slower on CPU).
        activation_dropout: dropout after the feed-forward ReLU.
        pre_norm: LayerNorm before each sublayer (tensor2tensor v2, the paper) or after (v1).
        max_positions: longest source or target sequence the position table covers.
        label_smoothing: smoothing mass epsilon in [0, 1) (paper: 0.1).
        optimizer: ``"adam"`` (``torch.optim.AdamW``, i.e. decoupled weight decay, as
            fairseq's adam) or ``"adafactor"`` (``torch.optim.Adafactor``, the paper's choice;
            its relative step is min(lr_t, 1/sqrt(t)) times the parameter RMS).
        lr: peak learning rate (``inverse_sqrt``, ``linear_warmup``, ``constant``) or the
            constant the schedule multiplies (``rsqrt_decay``: paper 1.0 -> 0.01 during warm-up).
        adam_betas: Adam's (beta1, beta2).
        adam_eps: Adam's epsilon.
        weight_decay: decay of matrices and embeddings; biases and LayerNorm never decay.
        lr_schedule: see ``lightning_slt.model.schedules`` (``inverse_sqrt``: linear warm-up
            then lr * sqrt(warmup / step); ``rsqrt_decay``: lr / sqrt(max(step, warmup))).
        warmup_steps: warm-up length in optimizer steps (paper: 10000).
        val_beam_size: beam size of validation decoding (1 = greedy, the fast default).
        beam_size: beam size of test, predict and ``translate`` (1 = greedy).
        length_penalty: GNMT length-penalty alpha of beam search (0 = none).
        max_len_a: a hypothesis has at most ``max_len_a * source_length + max_len_b`` tokens.
        max_len_b: see ``max_len_a``.
        output_dir: folder for test hypotheses and metrics JSON; None = the trainer's log_dir.

    Raises:
        ValueError: for an argument outside its range (the message names it and the value).

    Logs: ``train/loss``, ``train/nll``, ``train/tokens`` and ``lr`` every step; ``val/loss``,
    ``val/nll``, ``val/bleu``, ``val/chrf``, ``val/ter`` per validation; ``test/*`` likewise.

    Example::

        module = TranslationModule.from_preset("transformer_cpu", vocab_size=dm.vocab_size)
        pl.Trainer(max_steps=1000).fit(module, datamodule=dm)
        module.translate(["A dog runs on the beach."])
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 512,
        n_heads: int = 8,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        pre_norm: bool = True,
        max_positions: int = 1024,
        label_smoothing: float = 0.1,
        optimizer: Literal["adam", "adafactor"] = "adam",
        lr: float = 7e-4,
        adam_betas: tuple[float, float] = (0.9, 0.98),
        adam_eps: float = 1e-9,
        weight_decay: float = 0.0,
        lr_schedule: LRScheduleName = "inverse_sqrt",
        warmup_steps: int = 4000,
        val_beam_size: int = 1,
        beam_size: int = 4,
        length_penalty: float = 0.6,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._validate()
        self.model = Transformer(TransformerConfig(
            vocab_size=vocab_size, d_model=d_model, n_heads=n_heads, encoder_layers=encoder_layers,
            decoder_layers=decoder_layers, d_ff=d_ff, dropout=dropout,
            attention_dropout=attention_dropout, activation_dropout=activation_dropout,
            pre_norm=pre_norm, max_positions=max_positions,
        ))
        self.tokenizer: Tokenizer | None = None  # set by setup() from the datamodule or by on_load_checkpoint
        self.last_test_metrics: dict[str, Any] | None = None  # what the metrics JSON holds
        self._eval_records: list[tuple[int, str, str, float, float, int]] = []
        self._signature_logged = False
        self._rng_after_train_step: tuple[int, dict] | None = None  # (global_step, states)
        self._rng_to_restore: dict | None = None  # from a checkpoint, applied in on_train_start
        self._loaded_global_step = 0  # step of the last checkpoint loaded (for test reports)

    def _validate(self) -> None:
        hp = self.hparams
        if hp.optimizer not in ("adam", "adafactor"):
            raise ValueError(f"optimizer must be 'adam' or 'adafactor', got {hp.optimizer!r}")
        check_schedule_args(hp.lr_schedule, hp.warmup_steps)
        if not 0.0 <= hp.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {hp.label_smoothing}")
        if not hp.lr > 0:
            raise ValueError(f"lr must be > 0, got {hp.lr}")
        if hp.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {hp.weight_decay}")
        if len(hp.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in hp.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {hp.adam_betas}")
        for name in ("val_beam_size", "beam_size"):
            if hp[name] < 1:
                raise ValueError(f"{name} must be >= 1 (1 = greedy search), got {hp[name]}")
        if hp.length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {hp.length_penalty}")
        if hp.max_len_a < 0 or hp.max_len_b < 0:
            raise ValueError(f"max_len_a and max_len_b must be >= 0, got {hp.max_len_a} and {hp.max_len_b}")

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, **kwargs: Any) -> "TranslationModule":
        """A module with the architecture of a named preset (``transformer_base``,
        ``transformer_cpu``; see ``lightning_slt.model.presets``); ``kwargs`` set or override
        any other constructor argument (optimizer, schedule, decoding, even sizes)."""
        config = get_preset(preset)(vocab_size=vocab_size)
        arch = {name: getattr(config, name) for name in ARCHITECTURE_ARGUMENTS}
        return cls(vocab_size=vocab_size, **{**arch, **kwargs})

    # ------------------------------------------------------------------ tokenizer

    @property
    def pad_id(self) -> int:
        return self.model.config.pad_id

    def set_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Attach the sentencepiece ``Tokenizer`` used to detokenize output and to translate.

        Raises ``ValueError`` when its vocabulary or special ids differ from the model's, or when
        the module already holds a different one (a checkpoint trained with another model).
        """
        config = self.model.config
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"tokenizer has vocab_size={tokenizer.vocab_size} but the model has "
                f"vocab_size={config.vocab_size}; build both from the same sentencepiece model"
            )
        ids = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
        if ids != (config.pad_id, config.bos_id, config.eos_id):
            raise ValueError(f"tokenizer (pad, bos, eos) ids {ids} differ from the model's "
                             f"{(config.pad_id, config.bos_id, config.eos_id)}")
        if self.tokenizer is not None and self.tokenizer.model_proto != tokenizer.model_proto:
            raise ValueError(
                "the module already holds a different sentencepiece model (e.g. from its "
                "checkpoint); train and evaluate with the same spm_model / data settings"
            )
        self.tokenizer = tokenizer

    def _require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RuntimeError(
                "no tokenizer attached: run with a TranslationDataModule, load a checkpoint, or "
                "call set_tokenizer(datamodule.tokenizer) first"
            )
        return self.tokenizer

    @override
    def setup(self, stage: str) -> None:
        destroy_gloo_group_at_exit()  # CPU DDP ranks: a clean exit (see _runtime)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "tokenizer", None) is not None:
            self.set_tokenizer(datamodule.tokenizer)
        if stage == "test" and hasattr(datamodule, "input_files"):
            self._check_test_outputs(datamodule)

    def _check_test_outputs(self, datamodule: Any) -> None:
        """Refuse, before decoding, test outputs that would replace one of the test's own inputs
        (e.g. ``output_dir`` set to the corpus folder whose test file is ``hypotheses_test.txt``)."""
        split = getattr(datamodule, "test_split", "test")
        folder = self.test_output_dir()
        outputs = {"the test hypotheses file": folder / f"hypotheses_{split}.txt",
                   "the test metrics file": folder / f"metrics_{split}.json"}
        ckpt_path = self.trainer.ckpt_path
        inputs = {"checkpoint": ckpt_path if ckpt_path and "://" not in str(ckpt_path) else None,
                  **datamodule.input_files("test")}
        check_not_inputs(outputs, inputs, fix="set model.output_dir to another folder")

    # ------------------------------------------------------------------ loss

    def _token_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Per-token (loss, nll) (N,) on the N non-padding target positions, and their mask (B, T)."""
        hidden = self.model(batch["src"], batch["tgt_in"])  # (B, T, D)
        target_mask = batch["tgt_out"].ne(self.pad_id)  # (B, T)
        logits = self.model.logits(hidden[target_mask])  # (N, V): no vocabulary GEMM on pads
        loss, nll = label_smoothed_cross_entropy(logits, batch["tgt_out"][target_mask], self.hparams.label_smoothing)
        return loss, nll, target_mask

    def _check_finite(self, loss: Tensor) -> None:
        if bool(torch.isfinite(loss)):
            return
        raise FloatingPointError(
            f"training loss is {loss.item()} at global step {self.global_step}; {self._last_good_checkpoint()}. "
            "Lower lr, lengthen warm-up or set trainer.gradient_clip_val."
        )

    def _last_good_checkpoint(self) -> str:
        """Where to resume after a numerical failure: the newest checkpoint any ModelCheckpoint wrote.

        Every callback is asked, not only ``trainer.checkpoint_callback`` (the first one): the
        experiment runner's first is best-by-BLEU, its ``last.ckpt`` comes from a second one.
        Checkpoints are always finite (``on_save_checkpoint`` refuses non-finite weights).
        """
        paths = [path for callback in self.trainer.checkpoint_callbacks
                 for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
                 if path and os.path.isfile(path)]
        if not paths:
            return "no checkpoint was saved yet"
        return f"resume from the last good checkpoint {max(paths, key=os.path.getmtime)}"

    @override
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, nll, _ = self._token_losses(batch)
        n_tokens = loss.numel()
        mean_loss = loss.sum() / n_tokens
        self._check_finite(mean_loss)
        batch_size = batch["src"].size(0)
        self.log("train/loss", mean_loss, prog_bar=True, batch_size=batch_size)
        self.log("train/nll", nll.detach().sum() / n_tokens, batch_size=batch_size)
        self.log("train/tokens", float(n_tokens), batch_size=batch_size)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        return mean_loss

    @override
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [  # nanoGPT's rule: matrices and embeddings decay, vectors (biases, norms) do not
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": hp.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        if hp.optimizer == "adam":
            # fused: one kernel for all parameters, 4x faster than the per-tensor loop on CPU
            fused = all(p.device.type in ("cpu", "cuda") for p in params)
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.adam_betas), eps=hp.adam_eps,
                                          fused=fused or None)
        else:
            optimizer = torch.optim.Adafactor(groups, lr=hp.lr)
        scheduler = build_lr_scheduler(optimizer, hp.lr_schedule, hp.warmup_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ decoding

    def _search(self, src: Tensor, beam_size: int, length_penalty: float, max_len_a: float,
                max_len_b: int) -> list[list[int]]:
        """Token ids (no bos/eos) of the best hypothesis for each row of src (B, S)."""
        if beam_size == 1:
            return greedy_search(self.model, src, max_len_a=max_len_a, max_len_b=max_len_b)
        return beam_search(self.model, src, beam_size=beam_size, length_penalty=length_penalty,
                           max_len_a=max_len_a, max_len_b=max_len_b)

    def _decode_batch(self, src: Tensor, beam_size: int) -> list[str]:
        hp = self.hparams
        ids = self._search(src, beam_size, hp.length_penalty, hp.max_len_a, hp.max_len_b)
        return self._require_tokenizer().decode(ids)

    def translate(self, sentences: list[str], beam_size: int | None = None, length_penalty: float | None = None,
                  max_len_a: float | None = None, max_len_b: int | None = None,
                  max_tokens: int = 4096) -> list[str]:
        """Translate raw sentences; returns detokenized translations in the input order.

        Sentences are tokenized, sorted by length and batched so that a batch holds at most
        ``max_tokens`` padded source tokens; decoding settings default to the module's.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if not sentences:
            return []
        hp = self.hparams
        beam_size = hp.beam_size if beam_size is None else beam_size
        length_penalty = hp.length_penalty if length_penalty is None else length_penalty
        max_len_a = hp.max_len_a if max_len_a is None else max_len_a
        max_len_b = hp.max_len_b if max_len_b is None else max_len_b
        tokenizer = self._require_tokenizer()
        sources = self._encode_sources(tokenizer, sentences)
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        outputs: list[str] = [""] * len(sources)
        for batch_ids in _length_batches(order, [len(s) for s in sources], max_tokens):
            width = max(len(sources[i]) for i in batch_ids)
            src = torch.full((len(batch_ids), width), self.pad_id, dtype=torch.long)  # (B, S)
            for row, i in enumerate(batch_ids):
                src[row, :len(sources[i])] = torch.tensor(sources[i], dtype=torch.long)
            hyps = self._search(src.to(self.device), beam_size, length_penalty, max_len_a, max_len_b)
            for i, text in zip(batch_ids, tokenizer.decode(hyps)):
                outputs[i] = text
        return outputs

    def _encode_sources(self, tokenizer: Tokenizer, sentences: list[str]) -> list[list[int]]:
        """Source token ids as the datamodule builds them: pieces, then eos, truncated to fit."""
        limit = self.model.config.max_positions
        eos = self.model.config.eos_id
        encoded = tokenizer.encode(sentences)
        warning = truncation_warning("translate input", [len(ids) for ids in encoded], limit - 1)
        if warning:
            warnings.warn(warning, stacklevel=3)
        return [ids[:limit - 1] + [eos] for ids in encoded]

    # ------------------------------------------------------------------ evaluation

    def _evaluation_step(self, batch: dict[str, Any], beam_size: int) -> None:
        loss, nll, target_mask = self._token_losses(batch)
        per_token = torch.zeros(target_mask.shape, dtype=loss.dtype, device=loss.device)  # (B, T)
        sentence_loss = per_token.masked_scatter(target_mask, loss).sum(dim=1)  # (B,)
        sentence_nll = per_token.masked_scatter(target_mask, nll).sum(dim=1)  # (B,)
        sentence_tokens = target_mask.sum(dim=1)  # (B,)
        hypotheses = self._decode_batch(batch["src"], beam_size)
        for i, index in enumerate(batch["index"].tolist()):
            self._eval_records.append((int(index), hypotheses[i], batch["ref_text"][i],
                                       float(sentence_loss[i]), float(sentence_nll[i]), int(sentence_tokens[i])))

    def _finish_evaluation(self, prefix: str) -> tuple[list[tuple], TranslationScores, dict[str, float]]:
        """Gather all ranks' records, drop duplicates by index, score, log ``{prefix}/*``."""
        records = _gather_objects(self._eval_records, self.trainer.world_size)
        self._eval_records = []
        unique = sorted({record[0]: record for record in records}.values())  # by line index
        hypotheses = [record[1] for record in unique]
        references = [record[2] for record in unique]
        scores = score_translations(hypotheses, references)
        n_tokens = sum(record[5] for record in unique)
        values = {
            f"{prefix}/loss": sum(record[3] for record in unique) / max(n_tokens, 1),
            f"{prefix}/nll": sum(record[4] for record in unique) / max(n_tokens, 1),
            f"{prefix}/bleu": scores.bleu,
            f"{prefix}/chrf": scores.chrf,
            f"{prefix}/ter": scores.ter,
        }
        for name, value in values.items():  # identical on every rank; the mean keeps them
            self.log(name, value, prog_bar=name.endswith("bleu"), sync_dist=True)
        self._log_signatures_once(scores)
        return unique, scores, values

    def _log_signatures_once(self, scores: TranslationScores) -> None:
        if self._signature_logged or self.trainer.sanity_checking:
            return
        self._signature_logged = True
        rank_zero_info("sacreBLEU signatures: " + "; ".join(f"{k}: {v}" for k, v in scores.signatures.items()))
        for logger in self.loggers:
            logger.log_hyperparams({f"sacrebleu/{k}_signature": v for k, v in scores.signatures.items()})

    @override
    def on_validation_epoch_start(self) -> None:
        self._eval_records = []

    @override
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, self.hparams.val_beam_size)

    @override
    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    @override
    def on_test_epoch_start(self) -> None:
        self._eval_records = []

    @override
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, self.hparams.beam_size)

    @override
    def on_test_epoch_end(self) -> None:
        unique, scores, values = self._finish_evaluation("test")
        datamodule = getattr(self.trainer, "datamodule", None)
        split = getattr(datamodule, "test_split", "test")
        ckpt_path = self.trainer.ckpt_path
        checkpoint = str(Path(ckpt_path).resolve()) if ckpt_path and "://" not in str(ckpt_path) else ckpt_path
        self.last_test_metrics = {
            "bleu": scores.bleu, "chrf": scores.chrf, "ter": scores.ter,
            "loss": values["test/loss"], "nll": values["test/nll"],
            "signature": scores.signatures, "n_sentences": scores.n_sentences,
            "split": split, "corpus": getattr(datamodule, "corpus", None),
            "src_lang": getattr(datamodule, "src_lang", None), "tgt_lang": getattr(datamodule, "tgt_lang", None),
            "beam_size": self.hparams.beam_size, "length_penalty": self.hparams.length_penalty,
            "checkpoint": checkpoint,
            # trainer.test(ckpt_path=...) does not restore the step counter: take the checkpoint's.
            "global_step": self._loaded_global_step if checkpoint else self.global_step,
        }
        failure = None
        if self.trainer.is_global_zero:
            try:
                self._write_test_outputs(split, [record[1] for record in unique])
            except OSError as error:
                failure = error
        # A collective: every rank leaves the test once the files exist, and learns if rank 0
        # could not write them instead of waiting for it until the process group times out.
        message = self.trainer.strategy.broadcast(None if failure is None else f"{type(failure).__name__}: {failure}")
        if failure is not None:
            raise failure
        if message is not None:
            raise OSError(f"rank 0 could not write the test outputs: {message}")

    def test_output_dir(self) -> Path:
        """Where test outputs go: ``output_dir`` if set, else the trainer's log_dir."""
        if self.hparams.output_dir:
            return Path(self.hparams.output_dir)
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def _write_test_outputs(self, split: str, hypotheses: list[str]) -> None:
        folder = self.test_output_dir()
        write_text(folder / f"hypotheses_{split}.txt", "".join(h + "\n" for h in hypotheses))
        write_text(folder / f"metrics_{split}.json", json.dumps(self.last_test_metrics, indent=2) + "\n")
        rank_zero_info(f"test BLEU {self.last_test_metrics['bleu']:.2f} on {split}; outputs in {folder}")

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        hypotheses = self._decode_batch(batch["src"], self.hparams.beam_size)
        return {"index": batch["index"].tolist(), "hypotheses": hypotheses}

    # ------------------------------------------------------------------ checkpoint and exact resume

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._rng_after_train_step = (self.global_step, rng_states())

    @override
    def on_validation_end(self) -> None:
        # Make validation RNG-neutral for training (its dataloader iterator draws a seed).
        fitting = self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking
        if fitting and self._rng_after_train_step is not None:
            set_rng_states(self._rng_after_train_step[1])

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A weight that became NaN/inf (an inf gradient through Adam) must not overwrite the last
        # good checkpoint: the loss check only fires one step later, naming that checkpoint.
        broken = [name for name, tensor in checkpoint["state_dict"].items()
                  if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
        if broken:
            raise FloatingPointError(
                f"weights {broken[:3]} became NaN or infinite by global step {self.global_step}; not writing a "
                f"checkpoint with them: {self._last_good_checkpoint() if self._trainer else 'no checkpoint kept'}. "
                "Lower lr, lengthen warm-up or set trainer.gradient_clip_val."
            )
        if self.tokenizer is not None:
            checkpoint[TOKENIZER_KEY] = torch.frombuffer(bytearray(self.tokenizer.model_proto), dtype=torch.uint8)
        states = rng_states()
        if self._rng_after_train_step is not None:
            step, after_step = self._rng_after_train_step
            if step == self.global_step:  # saved after the last step's hooks (e.g. in validation)
                states = after_step
        checkpoint[RNG_KEY] = states

    def check_checkpoint(self, checkpoint: dict[str, Any], where: str = "the checkpoint",
                         tokenizer: Tokenizer | None = None) -> None:
        """Refuse a checkpoint this module cannot continue from, naming what differs and the fix.

        Checked before Lightning copies anything (``on_load_checkpoint``; the CLI also calls it
        before a run starts), so a wrong ``ckpt_path`` fails with a sentence instead of a
        ``size mismatch`` list, and nothing has trained or been written.

        Args:
            checkpoint: a loaded Lightning checkpoint of a TranslationModule.
            where: how to name it in messages (its path).
            tokenizer: the tokenizer the data will be encoded with (default: the attached one).

        Raises:
            ValueError: another vocabulary size or sentencepiece model, or tensors of other shapes.
        """
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        saved_hp = checkpoint.get("hyper_parameters") or {}
        state = checkpoint.get("state_dict") or {}
        embed = state.get("model.embed.weight")
        saved_vocab = saved_hp.get("vocab_size", embed.shape[0] if isinstance(embed, Tensor) else None)
        if saved_vocab is not None and saved_vocab != self.hparams.vocab_size:
            raise ValueError(
                f"{where} was trained with a vocabulary of {saved_vocab} sentencepiece pieces, but this model "
                f"has {self.hparams.vocab_size} (the size of the data's tokenizer{_spm_file(tokenizer)}): encode the "
                "data with the sentencepiece model the checkpoint was trained with (data.spm_model, or the same "
                "data.vocab_size and training data)"
            )
        saved_proto = checkpoint.get(TOKENIZER_KEY)
        if tokenizer is not None and isinstance(saved_proto, Tensor):
            saved_sha = hashlib.sha256(saved_proto.numpy().tobytes()).hexdigest()
            if saved_sha != tokenizer.sha256:
                raise ValueError(
                    f"{where} was trained with another sentencepiece model (sha256 {saved_sha[:12]}) than the one "
                    f"the data uses ({tokenizer.sha256[:12]}{_spm_file(tokenizer)}): the same ids "
                    "would mean other pieces. Use the checkpoint's model (data.spm_model) or the same data settings"
                )
        mine = self.state_dict()
        wrong = [f"{name} {tuple(value.shape)} there, {tuple(mine[name].shape)} here" for name, value in state.items()
                 if name in mine and isinstance(value, Tensor) and value.shape != mine[name].shape]
        missing = [name for name in mine if name not in state]
        if wrong or missing:
            differ = [f"{k}={saved_hp[k]} (here {self.hparams[k]})" for k in ARCHITECTURE_ARGUMENTS
                      if k in saved_hp and saved_hp[k] != self.hparams[k]]
            raise ValueError(
                f"{where} holds a model of other shapes: " + "; ".join(wrong[:3] or [f"no {missing[:3]}"])
                + (f" (its settings: {', '.join(differ)})" if differ else "")
                + ". Build the model with the checkpoint's settings (its hyper_parameters) or start a new run"
            )

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        where = f"checkpoint {trainer.ckpt_path}" if trainer is not None and trainer.ckpt_path else "the checkpoint"
        self.check_checkpoint(checkpoint, where)
        if trainer is not None:
            from lightning_slt.artifacts.checkpoint import check_resume_keeps_masks  # the checkpoint's owner

            check_resume_keeps_masks(trainer, checkpoint)
        if TOKENIZER_KEY in checkpoint:
            self.set_tokenizer(Tokenizer.from_proto(checkpoint[TOKENIZER_KEY].numpy().tobytes()))
        self._rng_to_restore = checkpoint.get(RNG_KEY)
        self._loaded_global_step = int(checkpoint.get("global_step", 0))

    @override
    def on_train_start(self) -> None:
        # Lightning restores weights, optimizer and loops before this hook; the dataloader
        # iterator and the sanity check have drawn from the RNGs already, so restoring here
        # continues the stream exactly where the checkpointed run left it.
        # Only when resuming (fit(ckpt_path=...)), not after load_from_checkpoint + a new fit.
        if self._rng_to_restore is not None and self.trainer.ckpt_path:
            set_rng_states(self._rng_to_restore)
        self._rng_to_restore = None


def _spm_file(tokenizer: Tokenizer | None) -> str:
    """`` <path>`` of the sentencepiece model file a tokenizer came from (given or cached), else ``""``."""
    path = getattr(tokenizer, "path", None)
    return f" {path}" if path else ""


def _length_batches(order: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Split ``order`` (indices sorted by length) into runs of at most ``max_tokens`` padded tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending lengths, so sentence i sets the batch width
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
