"""Joint sentencepiece tokenizer: trained once per training text and options, cached on disk.

One model covers source and target (a joint vocabulary lets the Transformer tie its embeddings,
as in Vaswani et al. 2017 and the paper's setup). Ids are fixed, pad=0, bos=1, eos=2, unk=3, so
padding masks and decoders can rely on them. The model travels as bytes (``model_proto``), so a
checkpoint can carry the exact tokenizer it was trained with.
"""

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sentencepiece as spm

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe")

# Sentencepiece samples this many sentences at most: keeps training quick on large corpora
# (Multi30k's 58k sentences are all used). Fixed, so it is part of the cache key implicitly.
_INPUT_SENTENCE_SIZE = 2_000_000
_NUM_THREADS = 2


class Tokenizer:
    """A sentencepiece model with the project's fixed special ids.

    Build it with ``Tokenizer.from_file(path)``, ``Tokenizer.from_proto(bytes)`` or
    ``train_tokenizer(...)``. It pickles as its model bytes, so DataLoader workers and
    checkpoints can hold it.

    Raises:
        ValueError: the model's pad/bos/eos/unk ids are not 0/1/2/3.
    """

    def __init__(self, model_proto: bytes, path: Path | None = None) -> None:
        self._proto = bytes(model_proto)
        self._processor = spm.SentencePieceProcessor(model_proto=self._proto)
        self.path = path  # file it was loaded from or cached at; None when built from bytes
        _check_special_ids(self._processor, path)

    @classmethod
    def from_file(cls, path: str | Path) -> "Tokenizer":
        """Load a ``.model`` file written by sentencepiece."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sentencepiece model not found: {path} (spm_model)")
        return cls(path.read_bytes(), path)

    @classmethod
    def from_proto(cls, model_proto: bytes) -> "Tokenizer":
        """Rebuild from ``model_proto`` bytes (e.g. as stored in a checkpoint)."""
        return cls(model_proto)

    @property
    def model_proto(self) -> bytes:
        """The serialized model, byte-identical to the ``.model`` file."""
        return self._proto

    @property
    def sha256(self) -> str:
        """Hex sha256 of ``model_proto``: identifies the exact vocabulary."""
        return hashlib.sha256(self._proto).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Piece ids of each sentence, without bos/eos (the batch collator adds them)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of sentences, got a single str; wrap it in a list")
        return self._processor.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Text of each id sequence. Stops at the first eos and skips pad/bos, so raw decoder
        outputs (which go on after eos in a batch) can be passed as they are."""
        cleaned = []
        for sequence in ids:
            sequence = [int(i) for i in sequence]
            if EOS_ID in sequence:
                sequence = sequence[: sequence.index(EOS_ID)]
            cleaned.append([i for i in sequence if i not in (PAD_ID, BOS_ID)])
        return self._processor.decode(cleaned)

    def __getstate__(self) -> dict:
        return {"model_proto": self._proto, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"], state["path"])

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, sha256={self.sha256[:12]}, path={self.path})"


def train_tokenizer(
    sentences: Sequence[str],
    cache_dir: str | Path,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
) -> Tokenizer:
    """A joint sentencepiece model for ``sentences``, trained only if not cached yet.

    The cache file is named by the sha256 of the training text and every training option
    (sentencepiece version included), so changing either trains a new model, and the same
    inputs, in this or another process, load the cached one. Training runs under a file lock
    and the model is written atomically, so DDP ranks started together train it once.

    Args:
        sentences: training text, one sentence per item (source and target sides together).
        cache_dir: folder for ``spm-<model_type>-<vocab_size>-<hash>.model`` files.
        vocab_size: number of pieces, special ids included; exact (an error if too large).
        model_type: ``"unigram"`` or ``"bpe"``.
        character_coverage: share of characters covered by pieces; 1.0 keeps every character
            of these Latin-script corpora.

    Raises:
        ValueError: bad option, no sentences, or vocab_size too large for the text.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {list(MODEL_TYPES)}, got {model_type!r}")
    if vocab_size < 8:
        raise ValueError(f"vocab_size must be at least 8 (4 special ids + pieces), got {vocab_size}")
    if not 0.0 < character_coverage <= 1.0:
        raise ValueError(f"character_coverage must be in (0, 1], got {character_coverage}")
    if len(sentences) == 0:
        raise ValueError("cannot train a tokenizer on no sentences: the training split is empty")
    options = {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "character_coverage": character_coverage,
        "input_sentence_size": _INPUT_SENTENCE_SIZE,
        "shuffle_input_sentence": True,
        "pad_id": PAD_ID,
        "bos_id": BOS_ID,
        "eos_id": EOS_ID,
        "unk_id": UNK_ID,
        "sentencepiece": spm.__version__,
    }
    key = _cache_key(sentences, options)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"spm-{model_type}-{vocab_size}-{key[:16]}.model"
    if path.is_file():
        return Tokenizer.from_file(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{path.name}.lock"):
        if path.is_file():  # another process trained it while we waited
            return Tokenizer.from_file(path)
        proto = _train(sentences, options)
        _write_atomic(path, proto)
    return Tokenizer(proto, path)


def _cache_key(sentences: Sequence[str], options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for sentence in sentences:
        digest.update(sentence.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _train(sentences: Sequence[str], options: dict) -> bytes:
    writer = io.BytesIO()
    spm_options = {key: value for key, value in options.items() if key != "sentencepiece"}
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=writer,
            num_threads=_NUM_THREADS,
            minloglevel=2,  # sentencepiece logs every step to stderr otherwise
            **spm_options,
        )
    except RuntimeError as err:
        if "Vocabulary size too high" in str(err):
            raise ValueError(
                f"vocab_size={options['vocab_size']} is too large for this training text "
                f"({len(sentences)} sentences); sentencepiece says: {str(err).split('] ')[-1]} "
                "Lower vocab_size (YAML data.vocab_size) or train on more data (train_subset)."
            ) from None
        raise
    return writer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.remove(temp_name)


@contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (POSIX ``flock``); a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: ranks may train concurrently; the atomic write keeps files whole
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_special_ids(processor: spm.SentencePieceProcessor, path: Path | None) -> None:
    actual = {
        "pad_id": processor.pad_id(),
        "bos_id": processor.bos_id(),
        "eos_id": processor.eos_id(),
        "unk_id": processor.unk_id(),
    }
    expected = {"pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID}
    if actual != expected:
        where = f" {path}" if path else ""
        raise ValueError(
            f"sentencepiece model{where} has special ids {actual}, expected {expected}. Retrain it "
            "with --pad_id=0 --bos_id=1 --eos_id=2 --unk_id=3, or leave spm_model unset to train one."
        )
