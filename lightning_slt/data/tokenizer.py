"""Joint sentencepiece tokenizer: trained once per training text and options, cached on disk.

One model covers source and target (a joint vocabulary lets the Transformer tie its embeddings,
as in Vaswani et al. 2017 and the paper's setup). Ids are fixed, pad=0, bos=1, eos=2, unk=3, so
padding masks and decoders can rely on them. The model travels as bytes (``model_proto``), so a
checkpoint can carry the exact tokenizer it was trained with.
"""

import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sentencepiece as spm

from lightning_slt.atomic import write_bytes

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe")

# Sentencepiece samples this many sentences at most: keeps training quick on large corpora
# (Multi30k's 58k sentences are all used). Fixed, so it is part of the cache key implicitly.
_INPUT_SENTENCE_SIZE = 2_000_000
_NUM_THREADS = 2
_MAX_SENTENCE_BYTES = 4192  # sentencepiece's max_sentence_length default: longer lines are skipped


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
        try:
            return cls(path.read_bytes(), path)
        except RuntimeError as err:  # sentencepiece's "Internal: ... ParseFromArray failed"
            raise ValueError(
                f"{path} is not a readable sentencepiece model (truncated, corrupt or another kind of file; "
                f"sentencepiece says: {str(err).strip()[:200]}). Point spm_model at a .model file written by "
                "sentencepiece, or, if it is a cached tokenizer, delete it: it is trained again from the corpus."
            ) from None

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

    def check_trained_with(self, model_proto: bytes, where: str) -> None:
        """Refuse weights trained with another sentencepiece model than this one (``model_proto``,
        as a checkpoint or ticket stores it): the same ids would mean other pieces, and a ticket
        built on them translates word salad with no error anywhere.

        Raises:
            ValueError: names ``where``, both models' sha256 and this one's file, and the fix.
        """
        saved = hashlib.sha256(model_proto).hexdigest()
        if saved != self.sha256:
            raise ValueError(
                f"{where} was trained with another sentencepiece model (sha256 {saved[:12]}) than the one the "
                f"data uses ({self.sha256[:12]}{f' {self.path}' if self.path else ''}): the same ids would mean "
                "other pieces. Use the checkpoint's model (data.spm_model) or the same data settings"
            )

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
    source: str = "the training text",
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
        source: where ``sentences`` come from (file names), for error messages.

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
        return _cached(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{path.name}.lock"):
        if path.is_file():  # another process trained it while we waited
            return _cached(path)
        proto = _train(sentences, options, source)
        write_bytes(path, proto)  # readable by all (umask permitting): a cache may be shared
    return Tokenizer(proto, path)


def _cached(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(path)
    except ValueError as err:
        raise ValueError(
            f"the tokenizer cache file {path} is damaged ({str(err).split('(', 1)[-1].split(')')[0]}): delete it "
            "and run again; it is trained again from the corpus"
        ) from None


def _cache_key(sentences: Sequence[str], options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for sentence in sentences:
        digest.update(sentence.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _train(sentences: Sequence[str], options: dict, source: str) -> bytes:
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
        raise _training_error(str(err), len(sentences), options, source) from None
    return writer.getvalue()


def _training_error(said: str, count: int, options: dict, source: str) -> Exception:
    """sentencepiece's internal error as what is wrong with the text or options, and the fix."""
    vocab = options["vocab_size"]
    if "Vocabulary size too high" in said:
        return ValueError(
            f"vocab_size={vocab} is too large for {source} ({count} sentences); sentencepiece says: "
            f"{said.split('] ')[-1]} Lower vocab_size (YAML data.vocab_size) or train on more data (train_subset)."
        )
    required = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", said)
    if required:
        return ValueError(
            f"vocab_size={vocab} is smaller than the {required.group(2)} pieces that the characters of {source} "
            f"and the special ids need (character_coverage={options['character_coverage']}). Raise vocab_size "
            f"(YAML data.vocab_size) to at least {required.group(2)}."
        )
    if "!sentences_.empty()" in said:
        return ValueError(
            f"no sentence of {source} ({count} lines) is short enough for sentencepiece "
            f"(at most {_MAX_SENTENCE_BYTES} bytes a line), so there is nothing to train the tokenizer on. "
            "The files must hold one sentence per line with LF line endings: split the text into sentences."
        )
    if "all_chars_count" in said:
        return ValueError(
            f"no text in {source}: all {count} lines are empty or only spaces, so there is nothing to train the "
            "tokenizer on. Point the data module at the files that hold the sentences (one per line)."
        )
    return RuntimeError(f"sentencepiece could not train a tokenizer on {source}: {said}")


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


def truncation_warning(where: str, lengths: Sequence[int], limit: int) -> str | None:
    """The warning for sequences longer than ``limit`` pieces that a caller cuts to ``limit``
    (naming their 1-based lines, so a long input is never shortened silently); None if none is."""
    lines = [i + 1 for i, length in enumerate(lengths) if length > limit]
    if not lines:
        return None
    shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
    return (f"{where}: line(s) {shown} of {len(lengths)} have more than {limit} sentencepiece pieces "
            f"(max_positions - 1) and are cut to their first {limit}; split those lines, or use a model with a "
            "larger max_positions")
