"""``lightning-slt export --format ctranslate2``: a TranslationModule as a CTranslate2 model folder.

Why: CTranslate2 is what NMT users deploy on CPU (int8 GEMMs, a C++ decoder, no Python per
step). The folder is built with CT2's spec API straight from our weights, so no OpenNMT or
fairseq checkpoint sits in between, and holds what ``ctranslate2.Translator(folder)`` and a
tokenizer need: ``model.bin``, ``config.json``, ``shared_vocabulary.json`` (our ids, in order:
piece i of the sentencepiece model is token i) and ``sentencepiece.model``.

How our ``Transformer`` maps onto ``TransformerSpec``:
- pre-norm (final LayerNorms on encoder and decoder) or post-norm, LayerNorm eps 1e-6, ReLU;
- one embedding for source, target and output projection (CT2 stores it once, as an alias),
  scaled by sqrt(d_model);
- positions: our t2t table (sines then cosines, timescale step log(1e4) / (D/2 - 1), first
  position 0) given explicitly, so CT2's own sinusoid, whose layout may differ, is never used;
  it has at least 1025 rows (the same sinusoid continued past ``max_positions``), so CT2's
  default limits (1024 source, 256 target tokens) never run off the table, which CT2 reports
  as an error in the middle of a batch;
- q/k/v fused as CT2 wants ([q|k|v] for self-attention, [k|v] for cross-attention), no biases;
- the source gets eos appended (``add_source_eos``), the decoder starts from bos;
- our search never emits pad or bos: the output projection gets a bias of -inf at those two ids
  (zero elsewhere), so CT2's greedy and beam search cannot either.

``translate`` decodes with CT2 under our length rule (``int(max_len_a * src_len + max_len_b)``
tokens before eos per sentence, src_len counting the appended eos); it is how the tests and the
benchmark compare CT2's output with ours.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lightning_slt.model.transformer import LAYER_NORM_EPS, sinusoidal_positions

if TYPE_CHECKING:
    from lightning_slt.model.module import TranslationModule

INSTALL = "pip install 'lightning_slt[ctranslate2]'"
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "int8_float16", "bfloat16", "int8_bfloat16")
SPM_FILE = "sentencepiece.model"
CT2_MAX_INPUT_LENGTH = 1024  # Translator.translate_batch's default max_input_length
# TransformerConfig fields the spec expresses (or that only matter in training).
_KNOWN_CONFIG = {"vocab_size", "d_model", "n_heads", "encoder_layers", "decoder_layers", "d_ff", "dropout",
                 "attention_dropout", "activation_dropout", "pre_norm", "max_positions", "pad_id", "bos_id",
                 "eos_id", "dropout_broadcast"}


class CTranslate2ExportError(ValueError):
    """The model, the target folder or the environment does not allow a CTranslate2 export."""


def require_ctranslate2() -> Any:
    """The ``ctranslate2`` module, or an error that says how to install it."""
    try:
        import ctranslate2
    except ImportError as error:
        raise CTranslate2ExportError(
            f"--format ctranslate2 needs the ctranslate2 package, which is not installed ({error}); "
            f"install it with: {INSTALL}"
        ) from None
    return ctranslate2


def load_module(path: str | os.PathLike) -> "TranslationModule":
    """The TranslationModule of a ticket (recognised by its magic bytes) or a Lightning checkpoint."""
    from lightning_slt.artifacts.ticket import MAGIC

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint or ticket at {path}: pass a file written by `lightning-slt fit` "
                                "or `lightning-slt export`")
    with open(path, "rb") as handle:
        is_ticket = handle.read(len(MAGIC)) == MAGIC
    if is_ticket:
        from lightning_slt.export.checkpoint import load_ticket

        return load_ticket(path, use="the CTranslate2 model will hold the weights of that step")
    from lightning_slt.export.checkpoint import read_module_checkpoint
    from lightning_slt.model.module import TranslationModule

    read_module_checkpoint(path)  # says what is wrong with a file that is not a TranslationModule checkpoint
    return TranslationModule.load_from_checkpoint(path, map_location="cpu").eval()


def check_target(out_dir: str | os.PathLike, inputs: Mapping[str, Any] | None = None) -> Path:
    """Refuse, before any work, a target that is an existing non-empty folder or a file, one of
    ``inputs`` or inside one, under a file, or in a folder that is not writable."""
    from lightning_slt.atomic import check_not_inputs
    from lightning_slt.export.outputs import check_output_parent

    out = Path(out_dir)
    inputs = dict(inputs or {})
    check_not_inputs({"--out": out}, inputs)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        kind = "folder is not empty" if out.is_dir() else "path is a file"
        raise CTranslate2ExportError(
            f"refusing to write the CTranslate2 model to {out}: that {kind}, and the export never replaces "
            "existing files; pass a new or empty folder as --out, or delete it first"
        )
    check_output_parent("--out", out, inputs)
    return out


def export_ctranslate2(source: "str | os.PathLike | TranslationModule", out_dir: str | os.PathLike,
                       quantization: str | None = None, vocabulary: list[str] | None = None) -> dict[str, Any]:
    """Write a CTranslate2 model folder for a checkpoint, a ticket or a TranslationModule.

    Built in a temporary folder beside ``out_dir`` and renamed into place, so a failure or a
    kill leaves no partial model behind. ``vocabulary`` (tokens in id order) replaces the
    tokenizer's pieces, e.g. padded for a benchmark model larger than its tokenizer. Returns what was written: files and their sizes,
    the quantization, the vocabulary size and the special tokens.

    Raises:
        CTranslate2ExportError: ctranslate2 missing, target not empty, no tokenizer, a
            quantization CT2 does not know, or a model the spec cannot express (what, where, fix).
        FileNotFoundError / ValueError: an unreadable checkpoint or ticket.
    """
    ctranslate2 = require_ctranslate2()
    out = check_target(out_dir, {"checkpoint": source} if isinstance(source, (str, os.PathLike)) else None)
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise CTranslate2ExportError(f"quantization {quantization!r} is not one CTranslate2 converts to; "
                                     f"choose one of {', '.join(QUANTIZATIONS)}")
    module = source if not isinstance(source, (str, os.PathLike)) else load_module(source)
    spec = build_spec(module, ctranslate2, vocabulary)
    try:
        spec.validate()
        spec.optimize(quantization=quantization)
    except ValueError as error:
        raise CTranslate2ExportError(f"CTranslate2 rejects the converted model: {error}") from None
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        spec.save(str(tmp))
        (tmp / SPM_FILE).write_bytes(module.tokenizer.model_proto)
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folders are 0o700
        if out.is_dir():
            out.rmdir()  # empty (checked above); os.replace cannot put a folder over a folder
        os.replace(tmp, out)
    except BaseException as error:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):  # CTranslate2 and the OS say "No space left on device" and no path
            raise _write_error(error, out) from error
        raise
    config = module.model.config
    return {
        "out": str(out), "quantization": quantization or "float32", "vocab_size": config.vocab_size,
        "special_tokens": {name: vocabulary_of(module.tokenizer)[getattr(config, f"{name}_id")]
                           for name in ("pad", "bos", "eos")},
        "files": {path.name: path.stat().st_size for path in sorted(out.iterdir())},
    }


def _write_error(error: OSError, out: Path) -> OSError:
    """The OS error of a failed write of the model folder, naming it and the fix."""
    fixes = {errno.ENOSPC: "free space on that file system, or pass --out on another one",
             errno.EDQUOT: "free space within your disk quota, or pass --out on another file system",
             errno.EROFS: "that file system is read-only: pass --out in a writable folder",
             errno.EACCES: "that folder is not writable for this user: pass --out in a writable folder"}
    where = f" (at its {Path(error.filename).name})" if error.filename else ""
    fix = fixes.get(error.errno, "check the folder and the disk")
    return OSError(error.errno, f"cannot write the CTranslate2 model to {out}{where}: {error.strerror or error}; "
                                f"{fix} (nothing was left behind in {out.parent})")


def build_spec(module: "TranslationModule", ctranslate2: Any, vocabulary: list[str] | None = None) -> Any:
    """The ``TransformerSpec`` of a TranslationModule's weights, vocabulary registered (not validated)."""
    from ctranslate2.specs import common_spec, transformer_spec

    model, tokenizer = module.model, module.tokenizer
    config = model.config
    if tokenizer is None:
        raise CTranslate2ExportError(
            "the model has no tokenizer (a ticket written with --no-tokenizer): the CTranslate2 folder needs the "
            "sentencepiece model and its vocabulary; export from the checkpoint, or a ticket with its tokenizer"
        )
    _check_expressible(model)
    spec = transformer_spec.TransformerSpec(
        transformer_spec.TransformerEncoderSpec(config.encoder_layers, config.n_heads, pre_norm=config.pre_norm,
                                                activation=common_spec.Activation.RELU),
        transformer_spec.TransformerDecoderSpec(config.decoder_layers, config.n_heads, pre_norm=config.pre_norm,
                                                activation=common_spec.Activation.RELU),
    )
    # Copies: a float32 CPU tensor's .numpy() shares its memory, and CT2's int8 quantization
    # scales the arrays in place, which would rewrite the module's own weights.
    weights = {name: tensor.detach().float().cpu().numpy().copy() for name, tensor in model.state_dict().items()}
    rows = max(config.max_positions, CT2_MAX_INPUT_LENGTH + 1)
    positions = sinusoidal_positions(rows, config.d_model).numpy()  # (rows, D) from position 0; prefix = ours
    embedding = weights["embed.weight"]
    spec.encoder.embeddings[0].weight = embedding
    spec.decoder.embeddings.weight = embedding
    for side, layers in (("encoder", spec.encoder), ("decoder", spec.decoder)):
        layers.scale_embeddings = True  # sqrt(d_model), as Transformer._embed
        layers.position_encodings.encodings = positions
        if config.pre_norm:
            _layer_norm(layers.layer_norm, weights, f"{side}.norm")
    for i, layer in enumerate(spec.encoder.layer):
        scope = f"encoder.layers.{i}"
        _self_attention(layer.self_attention, weights, f"{scope}.self_attn", f"{scope}.self_attn_norm")
        _ffn(layer.ffn, weights, scope)
    for i, layer in enumerate(spec.decoder.layer):
        scope = f"decoder.layers.{i}"
        _self_attention(layer.self_attention, weights, f"{scope}.self_attn", f"{scope}.self_attn_norm")
        _cross_attention(layer.attention, weights, scope)
        _ffn(layer.ffn, weights, scope)
    spec.decoder.projection.weight = embedding  # tied: saved once, as an alias of the embedding
    bias = np.zeros(config.vocab_size, dtype=np.float32)
    bias[[config.pad_id, config.bos_id]] = -np.inf  # never generated, as in lightning_slt.model.search
    spec.decoder.projection.bias = bias

    _register_vocabulary(spec, vocabulary_of(tokenizer) if vocabulary is None else list(vocabulary),
                         tokenizer.unk_id, config)
    return spec


def _cross_attention(attention: Any, weights: dict[str, np.ndarray], scope: str) -> None:
    """A decoder layer's cross-attention: CT2 fuses its k and v projections into one."""
    attention.linear[0].weight = weights[f"{scope}.cross_attn.q_proj.weight"]
    attention.linear[1].weight = np.concatenate(
        [weights[f"{scope}.cross_attn.k_proj.weight"], weights[f"{scope}.cross_attn.v_proj.weight"]])
    attention.linear[2].weight = weights[f"{scope}.cross_attn.out_proj.weight"]
    _layer_norm(attention.layer_norm, weights, f"{scope}.cross_attn_norm")


def _register_vocabulary(spec: Any, pieces: list[str], unk_id: int, config: Any) -> None:
    """One shared vocabulary, and the special tokens and source framing our model was trained with."""
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.config.unk_token = pieces[unk_id]
    spec.config.bos_token = pieces[config.bos_id]
    spec.config.eos_token = pieces[config.eos_id]
    spec.config.decoder_start_token = pieces[config.bos_id]
    spec.config.add_source_bos = False
    spec.config.add_source_eos = True  # our sources are pieces + eos (TranslationModule._encode_sources)
    spec.config.layer_norm_epsilon = LAYER_NORM_EPS


def _check_expressible(model: Any) -> None:
    """Refuse what the spec would silently drop: parameters we do not map, config we do not know."""
    from lightning_slt.model.transformer import Transformer

    if type(model) is not Transformer:
        raise CTranslate2ExportError(
            f"module.model is a {type(model).__module__}.{type(model).__qualname__}, not "
            "lightning_slt.model.transformer.Transformer: only that architecture maps onto CTranslate2's "
            "TransformerSpec; export a TranslationModule (undo sparsify_ or other module swaps first)"
        )
    config = model.config
    for field in dataclasses.fields(config):
        if field.name in _KNOWN_CONFIG:
            continue
        value, default = getattr(config, field.name), field.default
        if value != default:
            raise CTranslate2ExportError(
                f"TransformerConfig.{field.name}={value!r} (default {default!r}) is not mapped to CTranslate2 by "
                "lightning_slt/export/ctranslate2.py: the exported model would compute something else; "
                f"teach build_spec that option, or export a model with {field.name}={default!r}"
            )
    expected = {"embed.weight"}
    for side in ("encoder", "decoder"):
        layers = config.encoder_layers if side == "encoder" else config.decoder_layers
        attentions = ("self_attn",) if side == "encoder" else ("self_attn", "cross_attn")
        for i in range(layers):
            scope = f"{side}.layers.{i}"
            for attention in attentions:
                expected |= {f"{scope}.{attention}.{p}_proj.weight" for p in ("q", "k", "v", "out")}
                expected |= {f"{scope}.{attention}_norm.{p}" for p in ("weight", "bias")}
            expected |= {f"{scope}.ffn.{fc}.{p}" for fc in ("fc1", "fc2") for p in ("weight", "bias")}
            expected |= {f"{scope}.ffn_norm.{p}" for p in ("weight", "bias")}
        if config.pre_norm:
            expected |= {f"{side}.norm.weight", f"{side}.norm.bias"}
    names = set(model.state_dict())
    unmapped, missing = sorted(names - expected), sorted(expected - names)
    if unmapped or missing:
        raise CTranslate2ExportError(
            f"the model's tensors do not match CTranslate2's TransformerSpec: {len(unmapped)} with no place in it "
            f"{unmapped[:3]}, {len(missing)} it needs but the model lacks {missing[:3]}; CTranslate2 cannot run "
            "this model as it is: export a plain lightning_slt Transformer (model/transformer.py layout)"
        )


def _self_attention(spec: Any, weights: dict[str, np.ndarray], scope: str, norm: str) -> None:
    spec.linear[0].weight = np.concatenate([weights[f"{scope}.{p}_proj.weight"] for p in ("q", "k", "v")])
    spec.linear[1].weight = weights[f"{scope}.out_proj.weight"]
    _layer_norm(spec.layer_norm, weights, norm)


def _ffn(spec: Any, weights: dict[str, np.ndarray], scope: str) -> None:
    _layer_norm(spec.layer_norm, weights, f"{scope}.ffn_norm")
    spec.linear_0.weight, spec.linear_0.bias = weights[f"{scope}.ffn.fc1.weight"], weights[f"{scope}.ffn.fc1.bias"]
    spec.linear_1.weight, spec.linear_1.bias = weights[f"{scope}.ffn.fc2.weight"], weights[f"{scope}.ffn.fc2.bias"]


def _layer_norm(spec: Any, weights: dict[str, np.ndarray], scope: str) -> None:
    spec.gamma, spec.beta = weights[f"{scope}.weight"], weights[f"{scope}.bias"]


def processor_of(tokenizer: Any) -> Any:
    """A sentencepiece processor of the tokenizer's model bytes (``Tokenizer`` keeps its own private)."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=tokenizer.model_proto)


def vocabulary_of(tokenizer: Any) -> list[str]:
    """The piece of every id, in id order: the CT2 vocabulary, so that token i of CT2 is our id i."""
    processor = processor_of(tokenizer)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def length_limits(source_lengths: list[int], max_len_a: float, max_len_b: int, max_positions: int) -> list[int]:
    """Our per-sentence limit (``search._max_lengths``): int(a * src_len + b) tokens before eos, in [1, P - 1]."""
    return [min(max(int(max_len_a * length + max_len_b), 1), max_positions - 1) for length in source_lengths]


def translate(translator: Any, tokenizer: Any, sentences: list[str], max_len_a: float = 1.2, max_len_b: int = 10,
              max_positions: int = 1024, beam_size: int = 1, length_penalty: float = 0.0,
              batch_size: int = 64) -> list[str]:
    """Translate raw sentences with a CTranslate2 ``Translator`` under our length rule.

    Sources are cut to ``max_positions - 1`` pieces before CT2 adds eos, as
    ``TranslationModule.translate`` does. CT2 takes one ``max_decoding_length`` per call where
    ours is per sentence: greedy search (``beam_size=1``) decodes length-sorted batches of
    ``batch_size`` to the batch's largest limit and cuts each hypothesis to its own (exact:
    a greedy prefix does not depend on the limit); beam search calls CT2 once per limit. CT2's
    beam search ranks by log P / len**length_penalty and stops otherwise than ours, so only
    greedy output matches token for token.
    """
    processor = processor_of(tokenizer)
    pieces = [processor.id_to_piece(ids[:max_positions - 1]) for ids in tokenizer.encode(sentences)]
    limits = length_limits([len(p) + 1 for p in pieces], max_len_a, max_len_b, max_positions)
    order = sorted(range(len(pieces)), key=lambda i: (limits[i], i))
    if beam_size == 1:
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    else:
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(limits[i], []).append(i)
        batches = [ids[start:start + batch_size] for ids in groups.values() for start in range(0, len(ids), batch_size)]
    outputs: list[list[str]] = [[] for _ in sentences]
    for batch in batches:
        results = translator.translate_batch(
            [pieces[i] for i in batch], beam_size=beam_size, length_penalty=length_penalty,
            max_decoding_length=max(limits[i] for i in batch), max_input_length=0)
        for i, result in zip(batch, results):
            outputs[i] = result.hypotheses[0][:limits[i]]
    return [processor.decode_pieces(hyp) for hyp in outputs]
