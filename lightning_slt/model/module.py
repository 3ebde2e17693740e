"""``TranslationModule``: the LightningModule that trains, evaluates and runs the Transformer.

The class wires Lightning's hooks to modules that each own one concern: the architecture
(``config``), the loss (``loss``), the optimizer and schedule (``optimizers``, ``schedules``),
decoding (``search``), evaluation records and their DDP gathering (``evaluation``), the test
files (``outputs``), raw-text translation (``translate``), tokenizer and checkpoint checks
(``compat``), numerical guards (``finite``) and the RNG states of an exact resume (``rng``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from typing_extensions import override

from lightning_slt._lightning import TrainerFn, pl, rank_zero_info
from lightning_slt._runtime import destroy_gloo_group_at_exit
from lightning_slt.artifacts.checkpoint import check_resume_keeps_masks
from lightning_slt.artifacts.keys import RNG_KEY, TOKENIZER_KEY
from lightning_slt.callbacks.base import session_of
from lightning_slt.data.tokenizer import Tokenizer
from lightning_slt.model.compat import check_checkpoint_fits, check_tokenizer_fits, require_tokenizer
from lightning_slt.model.config import (
    ARCHITECTURE_ARGUMENTS,
    check_architecture_signature,
    config_from_arguments,
)
from lightning_slt.model.evaluation import EvalRecord, EvalSummary, sentence_records, summarize
from lightning_slt.model.finite import check_finite_loss, check_finite_weights
from lightning_slt.model.loss import token_losses
from lightning_slt.model.metrics import TranslationScores
from lightning_slt.model.optimizers import OptimizerName, build_optimizer, check_optimizer_args
from lightning_slt.model.outputs import check_outputs_spare_inputs, metrics_of_test, write_outputs
from lightning_slt.model.presets import preset_arguments
from lightning_slt.model.rng import TrainingRng
from lightning_slt.model.schedules import LRScheduleName, build_lr_scheduler, check_schedule_args, cooldown_steps_of
from lightning_slt.model.search import best_hypotheses
from lightning_slt.model.transformer import Transformer
from lightning_slt.model.translate import translate_sentences

# Importable from here as before the split (launch and export read them from this module).
__all__ = ["ARCHITECTURE_ARGUMENTS", "RNG_KEY", "TOKENIZER_KEY", "TranslationModule"]


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
        cooldown_fraction: the last part of ``trainer.max_steps`` over which the rate falls
            linearly to 0 (with ``linear_warmup``: warmup-stable-decay); 0 = none.
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
        optimizer: OptimizerName = "adam",
        lr: float = 7e-4,
        adam_betas: tuple[float, float] = (0.9, 0.98),
        adam_eps: float = 1e-9,
        weight_decay: float = 0.0,
        lr_schedule: LRScheduleName = "inverse_sqrt",
        warmup_steps: int = 4000,
        cooldown_fraction: float = 0.0,
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
        self.model = Transformer(config_from_arguments(vocab_size, self.hparams))
        self.tokenizer: Tokenizer | None = None  # set by setup() from the datamodule or by on_load_checkpoint
        self.last_test_metrics: dict[str, Any] | None = None  # what the metrics JSON holds
        self._eval_records: list[EvalRecord] = []
        self._signature_logged = False
        self._rng = TrainingRng()
        self._loaded_global_step = 0  # step of the last checkpoint loaded (for test reports)

    @override
    def configure_model(self) -> None:
        """Under Lightning's ``ModelParallelStrategy``: :meth:`shard` over its data-parallel mesh."""
        mesh = self.device_mesh
        if mesh is None:
            return
        if "tensor_parallel" in (mesh.mesh_dim_names or ()) and mesh["tensor_parallel"].size() > 1:
            raise ValueError("TranslationModule shards with FSDP2 only: use ModelParallelStrategy(tensor_parallel_size=1)")
        self.shard(mesh["data_parallel"] if "data_parallel" in (mesh.mesh_dim_names or ()) else mesh)

    def shard(self, mesh: Any) -> None:
        """FSDP2 over ``mesh``: one shard unit per encoder layer, per decoder layer (its
        cross-attention a unit of its own: the decoder reads its K/V outside the layer's forward)
        and the rest (the tied embedding) in the model's unit; the methods decoding calls besides
        ``forward`` gather their shards too. Once per module."""
        if getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        for layer in self.model.encoder.layers:
            fully_shard(layer, mesh=mesh)
        for layer in self.model.decoder.layers:
            fully_shard(layer.cross_attn, mesh=mesh)
            for method in ("memory_kv", "cross_attention"):
                register_fsdp_forward_method(layer.cross_attn, method)
            fully_shard(layer, mesh=mesh)
        fully_shard(self.model, mesh=mesh)
        for method in ("encode", "decode", "logits", "new_cache"):
            register_fsdp_forward_method(self.model, method)
        self._sharded = True

    def _validate(self) -> None:
        hp = self.hparams
        check_optimizer_args(hp.optimizer, hp.lr, hp.adam_betas, hp.weight_decay)
        check_schedule_args(hp.lr_schedule, hp.warmup_steps, hp.cooldown_fraction)
        if not 0.0 <= hp.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {hp.label_smoothing}")
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
        return cls(vocab_size=vocab_size, **{**preset_arguments(preset), **kwargs})

    # ------------------------------------------------------------------ tokenizer

    @property
    def pad_id(self) -> int:
        return self.model.config.pad_id

    def set_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Attach the sentencepiece ``Tokenizer`` used to detokenize output and to translate.

        Raises ``ValueError`` when its vocabulary or special ids differ from the model's, or when
        the module already holds a different one (a checkpoint trained with another model).
        """
        check_tokenizer_fits(self.model.config, tokenizer, self.tokenizer)
        self.tokenizer = tokenizer

    def _require_tokenizer(self) -> Tokenizer:
        return require_tokenizer(self.tokenizer)

    @override
    def setup(self, stage: str) -> None:
        destroy_gloo_group_at_exit()  # CPU DDP ranks: a clean exit (see _runtime)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "tokenizer", None) is not None:
            self.set_tokenizer(datamodule.tokenizer)
        if stage == "test" and hasattr(datamodule, "input_files"):
            split = getattr(datamodule, "test_split", "test")
            check_outputs_spare_inputs(self.test_output_dir(), split, self.trainer.ckpt_path, datamodule)

    # ------------------------------------------------------------------ training

    def _token_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Per-token (loss, nll) (N,) on the N non-padding target positions, and their mask (B, T)."""
        return token_losses(self.model, batch, self.hparams.label_smoothing)

    @override
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, nll, _ = self._token_losses(batch)
        n_tokens = loss.numel()
        mean_loss = loss.sum() / n_tokens
        check_finite_loss(mean_loss, self.global_step, self.trainer)
        batch_size = batch["src"].size(0)
        self.log("train/loss", mean_loss, prog_bar=True, batch_size=batch_size)
        self.log("train/nll", nll.detach().sum() / n_tokens, batch_size=batch_size)
        self.log("train/tokens", float(n_tokens), batch_size=batch_size)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        return mean_loss

    @override
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.adam_betas, hp.adam_eps,
                                    hp.weight_decay)
        # the cooldown ends at this fit's max_steps: a run resumed with a longer one cools down later
        total_steps = self.trainer.max_steps if self._trainer is not None else None
        cooldown_steps = cooldown_steps_of(hp.cooldown_fraction, total_steps)
        scheduler = build_lr_scheduler(optimizer, hp.lr_schedule, hp.warmup_steps, total_steps, cooldown_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ decoding

    def _decode_batch(self, src: Tensor, beam_size: int) -> list[str]:
        hp = self.hparams
        with self._whole_while_decoding():
            ids = best_hypotheses(self.model, src, beam_size, hp.length_penalty, hp.max_len_a, hp.max_len_b)
        return self._require_tokenizer().decode(ids)

    @contextmanager
    def _whole_while_decoding(self) -> Iterator[None]:
        """Under FSDP2 a decode runs as many forward passes as its own batch needs, so gathering
        the shards per pass would pair one rank's all-gathers with another's other ones (a hang or
        a size mismatch). Gather every shard unit once, in the same order on every rank, keep the
        weights whole through the decode, and shard them again after."""
        if not getattr(self, "_sharded", False):
            yield
            return
        from torch.distributed.fsdp import FSDPModule

        units = [module for module in self.modules() if isinstance(module, FSDPModule)]
        for unit in units:
            unit.unshard()
            unit.set_reshard_after_forward(False, recurse=False)
        try:
            yield
        finally:
            for unit in units:  # the root keeps its weights after forward, as FSDP2 itself sets it
                unit.set_reshard_after_forward(unit is not self.model, recurse=False)
                unit.reshard()

    def translate(self, sentences: list[str], beam_size: int | None = None, length_penalty: float | None = None,
                  max_len_a: float | None = None, max_len_b: int | None = None,
                  max_tokens: int = 4096) -> list[str]:
        """Translate raw sentences; returns detokenized translations in the input order.

        Sentences are tokenized, sorted by length and batched so that a batch holds at most
        ``max_tokens`` padded source tokens; decoding settings default to the module's.
        """
        hp = self.hparams
        return translate_sentences(
            self.model, self.tokenizer, sentences,
            beam_size=hp.beam_size if beam_size is None else beam_size,
            length_penalty=hp.length_penalty if length_penalty is None else length_penalty,
            max_len_a=hp.max_len_a if max_len_a is None else max_len_a,
            max_len_b=hp.max_len_b if max_len_b is None else max_len_b,
            max_tokens=max_tokens, device=self.device,
        )

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        hypotheses = self._decode_batch(batch["src"], self.hparams.beam_size)
        return {"index": batch["index"].tolist(), "hypotheses": hypotheses}

    # ------------------------------------------------------------------ evaluation

    def _evaluation_step(self, batch: dict[str, Any], beam_size: int) -> None:
        loss, nll, target_mask = self._token_losses(batch)
        hypotheses = self._decode_batch(batch["src"], beam_size)
        self._eval_records += sentence_records(batch["index"].tolist(), hypotheses, batch["ref_text"], loss, nll,
                                               target_mask)

    def _finish_evaluation(self, prefix: str) -> EvalSummary:
        """Gather all ranks' records, drop duplicates by index, score, log ``{prefix}/*``."""
        summary = summarize(self._eval_records, self.trainer.world_size, prefix)
        self._eval_records = []
        for name, value in summary.values.items():  # identical on every rank; the mean keeps them
            self.log(name, value, prog_bar=name.endswith("bleu"), sync_dist=True)
        self._log_signatures_once(summary.scores)
        return summary

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
        summary = self._finish_evaluation("test")
        datamodule = getattr(self.trainer, "datamodule", None)
        split = getattr(datamodule, "test_split", "test")
        ckpt_path = self.trainer.ckpt_path
        self.last_test_metrics = metrics_of_test(
            summary, datamodule, split, ckpt_path, self.hparams.beam_size, self.hparams.length_penalty,
            # trainer.test(ckpt_path=...) does not restore the step counter: take the checkpoint's.
            global_step=self._loaded_global_step if ckpt_path else self.global_step,
        )
        failure = None
        folder = self.test_output_dir()  # on every rank: trainer.log_dir is a collective (a broadcast)
        if self.trainer.is_global_zero:
            try:
                self._write_test_outputs(split, [record.hypothesis for record in summary.records],
                                         [record.reference for record in summary.records], folder)
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

    def _write_test_outputs(self, split: str, hypotheses: list[str], references: list[str],
                            folder: Path | None = None) -> None:
        folder = folder if folder is not None else self.test_output_dir()
        write_outputs(folder, split, hypotheses, references, self.last_test_metrics)
        rank_zero_info(f"test BLEU {self.last_test_metrics['bleu']:.2f} on {split}; outputs in {folder}")

    # ------------------------------------------------------------------ checkpoint and exact resume

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._rng.after_train_step(self.global_step)

    @override
    def on_validation_end(self) -> None:
        # Make validation RNG-neutral for training (its dataloader iterator draws a seed).
        self._rng.after_validation(self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_finite_weights(checkpoint["state_dict"], self.global_step, self._trainer)
        if self.tokenizer is not None:
            checkpoint[TOKENIZER_KEY] = torch.frombuffer(bytearray(self.tokenizer.model_proto), dtype=torch.uint8)
        checkpoint[RNG_KEY] = self._rng.for_checkpoint(self.global_step)

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
        check_checkpoint_fits(checkpoint, self.hparams, self.state_dict(), tokenizer, where)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        where = f"checkpoint {trainer.ckpt_path}" if trainer is not None and trainer.ckpt_path else "the checkpoint"
        self.check_checkpoint(checkpoint, where)
        if trainer is not None:
            check_resume_keeps_masks(trainer, checkpoint, session_of(trainer) is not None)
        if TOKENIZER_KEY in checkpoint:
            self.set_tokenizer(Tokenizer.from_proto(checkpoint[TOKENIZER_KEY].numpy().tobytes()))
        self._rng.loaded(checkpoint.get(RNG_KEY))
        self._loaded_global_step = int(checkpoint.get("global_step", 0))

    @override
    def on_train_start(self) -> None:
        self._rng.on_train_start(resuming=bool(self.trainer.ckpt_path))


# The signature above is what jsonargparse and save_hyperparameters read; TransformerConfig is
# where the architecture is defined, so the two are compared once, here.
check_architecture_signature(TranslationModule.__init__)
