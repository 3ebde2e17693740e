"""``TranslationDataModule``: corpus files -> joint sentencepiece -> token-bucketed batches.

Every setting is a constructor argument so LightningCLI YAML can set it (``data.max_tokens``).
The tokenizer is ready right after ``__init__`` (trained on first use, then cached on disk),
because LightningCLI links ``data.vocab_size`` into the model before any Trainer exists. Each
split is tokenized once per process and kept in memory. The module's ``state_dict`` records how
far the current training epoch got, so a run killed mid-epoch resumes at the very next batch.

The parts it ties together stand on their own: ``corpora`` (registry, data root, download),
``splits`` (a split's pairs: training filter, evaluation truncation), ``tokenizer``,
``batching`` (token buckets) and ``progress`` (the mid-epoch resume state).
"""

from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader

from lightning_slt._lightning import TrainerFn, pl
from lightning_slt.data.batching import TokenBucketBatchSampler
from lightning_slt.data.corpora import (
    download_corpus,
    get_corpus,
    parse_pair,
    resolve_corpus,
    user_cache_dir,
)
from lightning_slt.data.dataset import EncodedPairs, collate_translation
from lightning_slt.data.progress import epoch_progress, resume_epoch
from lightning_slt.data.splits import check_has_train_split, eval_pairs, predict_sources, train_pairs
from lightning_slt.data.text import read_parallel
from lightning_slt.data.tokenizer import MODEL_TYPES, Tokenizer, train_tokenizer

_STAGE_ROLES = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",), "predict": ("predict",)}


class TranslationDataModule(pl.LightningDataModule):
    """Parallel text for one language direction, as padded id batches.

    Training batches come from a ``TokenBucketBatchSampler`` (at most ``max_tokens`` padded
    tokens, shuffled per epoch from ``seed``), after dropping pairs longer than ``max_len``
    pieces on either side. Validation and test batches keep every sentence, sorted by length,
    unshuffled, with ``eval_max_tokens``; sentences longer than ``max_positions`` are cut there
    (with a warning). Under DDP every split is sharded across ranks, evaluation included (the
    model gathers hypotheses by ``index``); the Trainer needs ``use_distributed_sampler=False``.

    A batch is a dict: ``src`` (B, S) source ids + eos, padded with 0; ``tgt_in`` (B, T) bos +
    target ids; ``tgt_out`` (B, T) target ids + eos; ``src_text`` / ``ref_text`` lists of str;
    ``index`` (B,) line numbers in the split. Predict batches have ``src``, ``src_text``, ``index``.

    Args:
        corpus: registry name (``multi30k``, ``wmt14``, ``iwslt17``, ``tatoeba``) read from the
            data root; unused for splits given by path.
        src_lang, tgt_lang: translation direction, e.g. ``en`` -> ``de``.
        data_root: folder holding the corpora; default ``LIGHTNING_SLT_DATA``, else the user cache.
        train_files, valid_files, test_files: ``[src_path, tgt_path]`` (plain or .gz) replacing
            the registry's split.
        predict_files: source-side files for ``predict_dataloader``, read in order as one list.
        valid_split, test_split: registry split names, e.g. ``test2017`` or ``test-filtered``.
        vocab_size: sentencepiece pieces to train (special ids included). Ignored when
            ``spm_model`` is given: the ``vocab_size`` property then reports that model's size.
        spm_model_type: ``unigram`` or ``bpe``.
        spm_model: path of an existing sentencepiece model (ids pad 0, bos 1, eos 2, unk 3)
            used instead of training one.
        cache_dir: where trained sentencepiece models are cached; default
            ``<user cache>/lightning_slt/spm``.
        max_tokens: padded tokens per training batch (batch size x longest side).
        eval_max_tokens: the same for validation/test/predict batches.
        max_len: training pairs with more pieces than this on either side are dropped.
        max_positions: longest sequence (ids + eos/bos) the model accepts; longer evaluation
            sentences are truncated to it.
        train_subset, valid_subset, test_subset: keep only the first N pairs (quick runs, tests).
            The tokenizer is trained on the train subset.
        num_workers: DataLoader worker processes.
        seed: seed of the per-epoch batch shuffling and of the DataLoader's own generator.
        download: fetch a missing corpus into the data root first (only files published
            byte-identically upstream; see ``download_corpus``).

    Raises:
        ValueError: bad argument values (message names the argument and the fix).

    State: ``epoch``, ``batches_done`` (training batches of that epoch already trained),
    ``epoch_batches`` (the Trainer's batches per epoch) and ``sampler_batches`` (the sampler's),
    saved in the checkpoint by Lightning.

    Example::

        data = TranslationDataModule("multi30k", "en", "de", max_tokens=4096)
        model = TranslationModule(vocab_size=data.vocab_size)
        pl.Trainer(use_distributed_sampler=False).fit(model, datamodule=data)
    """

    def __init__(
        self,
        corpus: str = "multi30k",
        src_lang: str = "en",
        tgt_lang: str = "de",
        data_root: str | None = None,
        train_files: list[str] | None = None,
        valid_files: list[str] | None = None,
        test_files: list[str] | None = None,
        predict_files: list[str] | None = None,
        valid_split: str = "valid",
        test_split: str = "test",
        vocab_size: int = 8000,
        spm_model_type: Literal["unigram", "bpe"] = "unigram",
        spm_model: str | None = None,
        cache_dir: str | None = None,
        max_tokens: int = 4096,
        eval_max_tokens: int = 8192,
        max_len: int = 128,
        max_positions: int = 1024,
        train_subset: int | None = None,
        valid_subset: int | None = None,
        test_subset: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        # ``vocab_size`` is kept in ``self.hparams`` only: the attribute name is the property
        # that reports the real size of the tokenizer in use.
        self.save_hyperparameters()
        self.corpus = corpus
        self.src_lang = src_lang
        self.tgt_lang = tgt_lang
        self.data_root = data_root
        self.train_files, self.valid_files, self.test_files = train_files, valid_files, test_files
        self.predict_files = predict_files
        self.valid_split, self.test_split = valid_split, test_split
        self.spm_model_type = spm_model_type
        self.spm_model = spm_model
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self.eval_max_tokens = eval_max_tokens
        self.max_len = max_len
        self.max_positions = max_positions
        self.train_subset, self.valid_subset, self.test_subset = train_subset, valid_subset, test_subset
        self.num_workers = num_workers
        self.seed = seed
        self.download = download
        self._validate()
        self._tokenizer: Tokenizer | None = None
        self._texts: dict[str, tuple[list[str], list[str]]] = {}
        self._datasets: dict[str, EncodedPairs] = {}
        self._downloaded = False
        self._train_sampler: TokenBucketBatchSampler | None = None
        self._resume_state: dict | None = None

    # ----------------------------------------------------------------- tokenizer

    @property
    def tokenizer(self) -> Tokenizer:
        """The joint sentencepiece model: ``spm_model`` if given, else trained (or loaded from the
        cache) on the training split's source and target sides."""
        if self._tokenizer is None:
            if self.spm_model is not None:
                self._tokenizer = Tokenizer.from_file(self.spm_model)
            else:
                src, tgt = self._texts_of("train")
                cache_dir = Path(self.cache_dir) if self.cache_dir else user_cache_dir() / "spm"
                files = " and ".join(str(path) for path in self._files_of("train"))
                self._tokenizer = train_tokenizer(src + tgt, cache_dir, self.hparams.vocab_size, self.spm_model_type,
                                                  source=f"the training files {files}")
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the tokenizer's vocabulary (what the model's embedding needs)."""
        return self.tokenizer.vocab_size

    # ----------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        """Download the corpus (once per node, Lightning runs this on local rank 0 only)."""
        if self.download:
            self._ensure_downloaded()

    def setup(self, stage: str | None = None) -> None:
        """Read, check and tokenize the splits the stage needs (once; kept in memory)."""
        self._check_trainer()
        for role in _STAGE_ROLES.get(stage or "fit", ()):
            self.dataset(role)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        num_replicas, rank = self._replicas()
        sampler = TokenBucketBatchSampler(
            dataset.padded_lengths(),
            self.max_tokens,
            shuffle=True,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        # Lightning calls set_epoch only after a multi-worker loader has prefetched; start right.
        sampler.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        state, self._resume_state = self._resume_state, None
        resume_epoch(sampler, state)
        self._train_sampler = sampler
        return self._loader(dataset, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def state_dict(self) -> dict[str, int]:
        """Progress of the current training epoch, for an exact mid-epoch resume.

        Lightning 2.6 replays an interrupted epoch from its first batch and keeps no sampler
        position (see ``data.progress``).
        """
        trainer = self.trainer
        if trainer is None or self._train_sampler is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        return epoch_progress(trainer, self._train_sampler)

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Store the saved progress; the next ``train_dataloader`` applies it (Lightning restores
        the data module before it asks for the training loader)."""
        self._resume_state = dict(state_dict) if state_dict else None

    # ----------------------------------------------------------------- splits

    def dataset(self, role: Literal["train", "valid", "test", "predict"]) -> EncodedPairs:
        """The tokenized split (built on first use, then cached in memory)."""
        if role not in self._datasets:
            if role == "train":
                self._datasets[role] = self._build_train()
            elif role in ("valid", "test", "predict"):
                self._datasets[role] = self._build_eval(role)
            else:
                raise ValueError(f"role must be 'train', 'valid', 'test' or 'predict', got {role!r}")
        return self._datasets[role]

    def _build_train(self) -> EncodedPairs:
        src, tgt = self._texts_of("train")
        return train_pairs(src, tgt, self.tokenizer, self.max_len)

    def _build_eval(self, role: str) -> EncodedPairs:
        if role == "predict":
            return predict_sources(self.predict_files, self.tokenizer, self.max_positions)
        src, tgt = self._texts_of(role)
        return eval_pairs(src, tgt, self.tokenizer, self.max_positions, role, self._files_of(role))

    def _texts_of(self, role: str) -> tuple[list[str], list[str]]:
        """Raw source and target lines of a split, subset applied (read once)."""
        if role not in self._texts:
            src, tgt = read_parallel(*self._files_of(role))
            limit = {"train": self.train_subset, "valid": self.valid_subset, "test": self.test_subset}[role]
            if limit is not None:
                src, tgt = src[:limit], tgt[:limit]
            self._texts[role] = (src, tgt)
        return self._texts[role]

    def input_files(self, role: Literal["train", "valid", "test"]) -> dict[str, Path | None]:
        """The files a ``role`` split is read from, by what they are (so that a command can refuse
        to write over one of them)."""
        src, tgt = self._files_of(role)
        return {f"{role} source file": src, f"{role} target file": tgt,
                "spm_model": Path(self.spm_model) if self.spm_model else None}

    def _files_of(self, role: str) -> tuple[Path, Path]:
        custom = {"train": self.train_files, "valid": self.valid_files, "test": self.test_files}[role]
        if custom is not None:
            return Path(custom[0]), Path(custom[1])
        split = {"train": "train", "valid": self.valid_split, "test": self.test_split}[role]
        pair = f"{self.src_lang}-{self.tgt_lang}"
        if role == "train":
            check_has_train_split(self.corpus, pair)
        if self.download:
            self._ensure_downloaded()
        return resolve_corpus(self.corpus, pair, split, root=self.data_root)

    def _ensure_downloaded(self) -> None:
        if not self._downloaded:
            download_corpus(self.corpus, f"{self.src_lang}-{self.tgt_lang}", root=self.data_root)
            self._downloaded = True

    # ----------------------------------------------------------------- loaders

    def _eval_loader(self, role: str) -> DataLoader:
        dataset = self.dataset(role)
        num_replicas, rank = self._replicas()
        sampler = TokenBucketBatchSampler(
            dataset.padded_lengths(), self.eval_max_tokens, shuffle=False, num_replicas=num_replicas, rank=rank
        )
        return self._loader(dataset, sampler)

    def _loader(self, dataset: EncodedPairs, sampler: TokenBucketBatchSampler) -> DataLoader:
        # Its own generator: creating an iterator draws a base seed, which would otherwise come
        # from (and advance) the global torch RNG, so a resumed run would get other dropout masks.
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate_translation,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _replicas(self) -> tuple[int, int]:
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def _check_trainer(self) -> None:
        trainer = self.trainer
        # Private attribute read defensively: Lightning's own error for this case is less direct.
        if trainer is not None and trainer.world_size > 1:
            if getattr(trainer._accelerator_connector, "use_distributed_sampler", False):
                raise ValueError(
                    "TranslationDataModule shards its token-bucket batches across ranks itself: create "
                    "the Trainer with use_distributed_sampler=False (YAML: trainer.use_distributed_sampler: false)"
                )

    def _validate(self) -> None:
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang must differ, got {self.src_lang!r} for both")
        if None in (self.train_files, self.valid_files, self.test_files):
            parse_pair(get_corpus(self.corpus), f"{self.src_lang}-{self.tgt_lang}")
        for name in ("train_files", "valid_files", "test_files"):
            files = getattr(self, name)
            if files is not None and len(files) != 2:
                raise ValueError(f"{name} must be [src_path, tgt_path], got {len(files)} path(s): {files}")
            if files is not None and _same_file(files[0], files[1]):  # a copy-paste slip: it trains the identity
                raise ValueError(f"{name} names one file for both sides ({files[0]} and {files[1]}): pass "
                                 f"[{self.src_lang} file, {self.tgt_lang} file], the source sentences and their "
                                 "translations")
        if self.predict_files is not None and len(self.predict_files) == 0:
            raise ValueError("predict_files must list at least one source file, got []")
        if self.spm_model_type not in MODEL_TYPES:
            raise ValueError(f"spm_model_type must be one of {list(MODEL_TYPES)}, got {self.spm_model_type!r}")
        if self.hparams.vocab_size < 8:
            raise ValueError(f"vocab_size must be at least 8, got {self.hparams.vocab_size}")
        if not 1 <= self.max_len < self.max_positions:
            raise ValueError(
                f"max_len must be in [1, max_positions={self.max_positions}), got {self.max_len}"
            )
        if self.max_tokens < self.max_len + 1:
            raise ValueError(
                f"max_tokens={self.max_tokens} must be at least max_len + 1 = {self.max_len + 1} so that "
                "every training pair kept by the length filter fits in a batch; raise max_tokens or lower max_len"
            )
        if self.eval_max_tokens < self.max_positions:
            raise ValueError(
                f"eval_max_tokens={self.eval_max_tokens} must be at least max_positions={self.max_positions}: "
                "evaluation keeps every sentence, up to max_positions tokens; raise eval_max_tokens"
            )
        for name in ("train_subset", "valid_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of pairs or None (all), got {value}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def _same_file(a: str | Path, b: str | Path) -> bool:
    """One file under two names (the same path, a link): by inode when both exist."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return a.samefile(b)
    return a.resolve() == b.resolve()
