"""Bad input: each case is refused with a message that says what is wrong, where, and how to fix
it, before any training step, and without writing a file or changing an existing one.

Every parametrized case is one bad input of the suite's figures line.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from lightning_slt import ConvergedMask, GradualMagnitudePruning, PretrainedStart, RandomMask, WeightRewind
from lightning_slt import cli
from lightning_slt.data import (
    CorpusEncodingError,
    CorpusNotFoundError,
    EmptyCorpusError,
    MisalignedCorpusError,
    read_parallel,
    resolve_corpus,
    train_tokenizer,
)
from lightning_slt.experiments import ExperimentConfig, load_config, plan, run_experiment
from lightning_slt.atomic import write_json
from lightning_slt.experiments.runner import _manifest
from lightning_slt.artifacts.ticket import TicketError, read_ticket
from lightning_slt.export import export_checkpoint, load_ticket

from tests.callbacks.tiny import fresh_module as fresh_tiny_module  # a LightningModule that is not ours

from .tiny import REPO_ROOT, StepCounter, cli_config, file_states, make_data, make_module, make_trainer

TINY_EXPERIMENT_BASE = str(REPO_ROOT / "tests" / "experiments" / "tiny_base.yaml")


# ----------------------------------------------------------------------------- shared inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_root, spm_cache) -> SimpleNamespace:
    """A pruned tiny run's checkpoint (50 % masks, θ0 and θ2 recorded), broken copies of it, a
    checkpoint of a wider model, two foreign sentencepiece models and a ticket."""
    root = tmp_path_factory.mktemp("inputs")
    data = make_data(data_root, spm_cache)
    module = make_module(data)
    callbacks = [GradualMagnitudePruning(0.5, end_step=2, frequency=1), WeightRewind(step=0), WeightRewind(step=2)]
    trainer = make_trainer(root, max_steps=4, callbacks=callbacks)
    trainer.fit(module, datamodule=data)
    good = root / "good.ckpt"
    trainer.save_checkpoint(good)
    raw = good.read_bytes()
    (root / "truncated.ckpt").write_bytes(raw[: len(raw) // 2])  # a copy cut short
    (root / "corrupt.ckpt").write_bytes(bytes(64) + raw[64:])  # its zip header overwritten

    wide = make_module(data, d_model=32)
    wide_trainer = make_trainer(root, max_steps=1, callbacks=[WeightRewind(step=0)])
    wide_trainer.fit(wide, datamodule=data)
    wide_trainer.save_checkpoint(root / "other_shapes.ckpt")

    train_src, train_tgt = read_parallel(*resolve_corpus("multi30k", "en-de", "train", root=data_root))
    other_vocab = train_tokenizer(train_src[:96] + train_tgt[:96], root / "spm150", vocab_size=150)
    other_spm = train_tokenizer(train_src[200:400] + train_tgt[200:400], root / "spm200", vocab_size=200)
    export_checkpoint(good, root / "good.ticket")
    foreign = fresh_tiny_module(0)
    foreign_trainer = make_trainer(root, max_steps=1)
    foreign_trainer.fit(foreign)
    foreign_trainer.save_checkpoint(root / "foreign.ckpt")
    return SimpleNamespace(
        root=root, good=good, truncated=root / "truncated.ckpt", corrupt=root / "corrupt.ckpt",
        other_shapes=root / "other_shapes.ckpt", foreign=root / "foreign.ckpt", missing=root / "missing.ckpt",
        other_vocab=other_vocab.path, other_spm=other_spm.path, ticket=root / "good.ticket",
        masks=torch.load(good, weights_only=True)["lightning_slt"]["masks"],
        lines=(train_src[:10], train_tgt[:10]),
    )


def _fit(data, out: Path, callbacks: list, counter: StepCounter, ckpt_path: str | None = None, max_steps: int = 4) -> None:
    """A fit that checkpoints into ``out / "ckpt"`` after every step, counting its steps."""
    saver = ModelCheckpoint(dirpath=out / "ckpt", save_last=True, every_n_train_steps=1, save_top_k=0)
    make_trainer(out, max_steps=max_steps, enable_checkpointing=True, callbacks=[*callbacks, counter, saver]).fit(
        make_module(data), datamodule=data, ckpt_path=ckpt_path)


def _says(error: BaseException, *fragments: str) -> None:
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


# ----------------------------------------------------------------------------- corpus files


def _write(path: Path, lines: list[str], raw: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = raw if raw is not None else "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _misaligned(folder, src, tgt):
    files = [_write(folder / "train.en", src), _write(folder / "train.de", tgt[:9])]
    return {"train_files": files}, MisalignedCorpusError, [str(files[0]), str(files[1]), "10 lines", "9 lines"]


def _one_side_empty(folder, src, tgt):
    files = [_write(folder / "train.en", src), _write(folder / "train.de", [])]
    return {"train_files": files}, MisalignedCorpusError, [str(files[1]), "0 lines", "10 lines"]


def _missing_file(folder, src, tgt):
    files = [folder / "nope.en", _write(folder / "train.de", tgt)]
    return {"train_files": files}, CorpusNotFoundError, [f"corpus file not found: {files[0]}", "train_files"]


def _empty_files(folder, src, tgt):
    files = [_write(folder / "train.en", []), _write(folder / "train.de", [])]
    return {"train_files": files}, EmptyCorpusError, [str(files[0]), str(files[1]), "hold no lines"]


def _invalid_utf8(folder, src, tgt):
    raw = "".join(line + "\n" for line in tgt[:6]).encode() + b"Ein Hund l\xe4uft.\n" + b"x\n" * 3  # latin-1 line 7
    files = [_write(folder / "train.en", src), _write(folder / "train.de", [], raw)]
    return {"train_files": files}, CorpusEncodingError, [f"{files[1]}, line 7: invalid UTF-8", "iconv"]


def _truncated_gzip(folder, src, tgt):
    path = _write(folder / "train.de.gz", tgt)
    path.write_bytes(path.read_bytes()[:-12])
    return {"train_files": [_write(folder / "train.en", src), path]}, CorpusEncodingError, [str(path), "not a valid gzip"]


def _misaligned_valid(folder, src, tgt):
    files = [_write(folder / "valid.en", src), _write(folder / "valid.de", tgt + ["one more"])]
    return {"valid_files": files}, MisalignedCorpusError, [str(files[0]), str(files[1]), "10 lines", "11 lines"]


def _corpus_not_under_root(folder, src, tgt):
    folder.mkdir(parents=True)
    return {"data_root": str(folder)}, CorpusNotFoundError, [str(folder / "multi30k" / "train.en.gz"), "LIGHTNING_SLT_DATA"]


def _spm_model_missing(folder, src, tgt):
    return {"spm_model": str(folder / "none.model")}, FileNotFoundError, [str(folder / "none.model"), "spm_model"]


CORPUS_CASES = [_misaligned, _one_side_empty, _missing_file, _empty_files, _invalid_utf8, _truncated_gzip,
                _misaligned_valid, _corpus_not_under_root, _spm_model_missing]


@pytest.mark.parametrize("case", CORPUS_CASES, ids=lambda case: case.__name__.strip("_"))
def test_bad_corpus_files_are_refused_before_training(case, inputs, make_data, spm_cache, tmp_path, tally):
    overrides, error, fragments = case(tmp_path / "corpus", *inputs.lines)
    overrides = {k: [str(p) for p in v] if isinstance(v, list) else v for k, v in overrides.items()}
    before = file_states(tmp_path, spm_cache)
    counter = StepCounter()
    with pytest.raises(error) as info:
        data = make_data(**overrides)
        make_trainer(tmp_path / "run", max_steps=2, enable_checkpointing=True, callbacks=[counter]).fit(
            make_module(data), datamodule=data)
    _says(info.value, *fragments)
    assert counter.steps == 0
    assert file_states(tmp_path, spm_cache) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- configuration


def _cli_args(tmp_path: Path, cfg: Path, extra: dict | None, args: list[str]) -> list[str]:
    more = []
    if extra is not None:
        (tmp_path / "extra.yaml").write_text(yaml.safe_dump(extra))
        more = ["--config", str(tmp_path / "extra.yaml")]
    return ["fit", "--config", str(cfg), *more, *args]


CONFIG_CASES = [  # (id, extra YAML, command-line args, what jsonargparse's message says)
    ("value_not_int", None, ["--model.d_model=wide"], ['Parser key "model.d_model"', "Expected a <class 'int'>. Got value: wide"]),
    ("value_not_float", None, ["--model.lr=fast"], ['Parser key "model.lr"', "Expected a <class 'float'>. Got value: fast"]),
    ("yaml_value_wrong_type", {"data": {"max_tokens": "lots"}}, [],
     ['Parser key "data.max_tokens"', "Expected a <class 'int'>. Got value: lots"]),
    ("yaml_key_misspelt", {"trainer": {"max_step": 4}}, [], ["does not accept option 'trainer.max_step'"]),
    ("callback_arg_wrong_type", {"trainer": {"callbacks": [{"class_path": "lightning_slt.WeightRewind",
                                                             "init_args": {"step": "early"}}]}}, [],
     ["class_path 'lightning_slt.WeightRewind'", 'Parser key "step"', "Expected a <class 'int'>. Got value: early"]),
]


@pytest.mark.parametrize(("extra", "args", "says"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_of_the_wrong_type_is_named_by_the_cli(extra, args, says, data_root, spm_cache, tmp_path, capsys, tally):
    command = _cli_args(tmp_path, cli_config(tmp_path, data_root, spm_cache), extra, args)
    before = file_states(tmp_path, spm_cache)
    with pytest.raises(SystemExit) as info:
        cli.main(command)
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert all(fragment in err for fragment in says), err[-2000:]
    assert not (tmp_path / "run").exists()
    assert file_states(tmp_path, spm_cache) == before
    tally("bad_inputs")


EXPERIMENT_YAML_CASES = [
    ("targets_not_a_list", "targets: high\n", ['Parser key "targets"', "Expected a <class 'list'>. Got value: high"]),
    ("seeds_not_ints", "seeds: [one]\n", ['Parser key "seeds"', "Expected a <class 'int'>. Got value: one"]),
    ("key_misspelt", "method: [slt]\n", ["Option 'method' is not accepted"]),
]


@pytest.mark.parametrize(("line", "says"), [c[1:] for c in EXPERIMENT_YAML_CASES], ids=[c[0] for c in EXPERIMENT_YAML_CASES])
def test_experiment_yaml_of_the_wrong_type_is_named(line, says, tmp_path, tally):
    from jsonargparse import ArgumentError

    path = tmp_path / "exp.yaml"
    path.write_text(f"base: [{TINY_EXPERIMENT_BASE}]\nmethods: [slt]\noutput_dir: {tmp_path / 'out'}\n" + line)
    with pytest.raises(ArgumentError) as info:
        load_config(path)
    _says(info.value, *says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]
    tally("bad_inputs")


# ----------------------------------------------------------------------------- pruning arguments


ARGUMENT_CASES = [  # (id, constructor call, message)
    ("final_sparsity_1", lambda ck: GradualMagnitudePruning(final_sparsity=1.0), "final_sparsity must be a fraction in [0, 1)"),
    ("initial_sparsity_negative", lambda ck: GradualMagnitudePruning(0.5, initial_sparsity=-0.1), "initial_sparsity must be a fraction in [0, 1)"),
    ("initial_above_final", lambda ck: GradualMagnitudePruning(0.5, initial_sparsity=0.6), "initial_sparsity (0.6) must not exceed final_sparsity (0.5)"),
    ("converged_mask_sparsity_1.2", lambda ck: ConvergedMask(str(ck), sparsity=1.2), "sparsity must be a fraction in [0, 1)"),
    ("random_mask_sparsity_negative", lambda ck: RandomMask(sparsity=-0.5), "sparsity must be a fraction in [0, 1)"),
    ("sparsity_not_a_number", lambda ck: RandomMask(sparsity="half"), "sparsity must be a number in [0, 1), got 'half'"),
    ("rewind_step_negative", lambda ck: WeightRewind(step=-1), "step must be a non-negative number of optimizer steps"),
    ("schedule_end_before_begin", lambda ck: GradualMagnitudePruning(0.5, begin_step=8, end_step=4), "end_step (4) must not precede begin_step (8)"),
    ("experiment_target_1", lambda ck: _experiment(ck, targets=[0.5, 1.0]), "targets[1] must be a fraction in [0, 1)"),
    ("experiment_targets_decreasing", lambda ck: _experiment(ck, targets=[0.6, 0.5]), "targets must be strictly increasing"),
    ("experiment_targets_repeated", lambda ck: _experiment(ck, targets=[0.5, 0.5]), "targets must be strictly increasing"),
]


def _experiment(root: Path, **overrides) -> ExperimentConfig:
    return ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=["slt"], output_dir=str(root.parent / "exp"), **overrides)


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES])
def test_bad_pruning_arguments_are_refused_at_construction(build, message, inputs, tally):
    before = file_states(inputs.root)
    with pytest.raises(ValueError) as info:
        build(inputs.good)
    _says(info.value, message)
    assert file_states(inputs.root) == before and not (inputs.root.parent / "exp").exists()
    tally("bad_inputs")


def test_sparsity_outside_the_unit_interval_in_yaml_is_refused(data_root, spm_cache, tmp_path, tally):
    extra = {"trainer": {"callbacks": [{"class_path": "lightning_slt.GradualMagnitudePruning",
                                        "init_args": {"final_sparsity": 1.5}}]}}
    command = _cli_args(tmp_path, cli_config(tmp_path, data_root, spm_cache), extra, [])
    before = file_states(tmp_path, spm_cache)
    with pytest.raises(ValueError) as info:  # raised while LightningCLI builds the callbacks
        cli.main(command)
    _says(info.value, "final_sparsity must be a fraction in [0, 1) (0.9 = 90 % of weights pruned), got 1.5")
    assert not (tmp_path / "run").exists() and file_states(tmp_path, spm_cache) == before
    tally("bad_inputs")


SETUP_CASES = [  # checks that need the Trainer or the source checkpoint: refused at setup, before step 1
    ("rewind_step_beyond_run", lambda ins: WeightRewind(step=50), "WeightRewind step 50 is beyond the run (trainer.max_steps=4)"),
    ("mp_end_after_run", lambda ins: GradualMagnitudePruning(0.5, end_step=9, frequency=1), "end_step (9) is after trainer.max_steps (4)"),
    ("target_below_previous_round", lambda ins: ConvergedMask(str(ins.good), sparsity=0.3), "below the 0.5000 of checkpoint"),
    ("rewind_step_not_recorded", lambda ins: WeightRewind(step=1, source=str(ins.good)), "has no θ_1: it recorded steps [0, 2]"),
]


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in SETUP_CASES], ids=[c[0] for c in SETUP_CASES])
def test_bad_pruning_setup_is_refused_before_the_first_step(build, message, inputs, make_data, tmp_path, tally):
    before, counter = file_states(tmp_path, inputs.root), StepCounter()
    with pytest.raises(ValueError) as info:
        _fit(make_data(), tmp_path / "run", [build(inputs)], counter)
    _says(info.value, message)
    assert counter.steps == 0 and file_states(tmp_path, inputs.root) == before
    tally("bad_inputs")


def test_experiment_rewind_step_beyond_the_run_is_refused(tmp_path, tally):
    with pytest.raises(ValueError) as info:
        run_experiment(ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=["slt"], output_dir=str(tmp_path / "exp"),
                                        targets=[0.5], rewind_step=11))
    _says(info.value, "rewind_step 11 is beyond the run's max_steps 10")
    assert list(tmp_path.iterdir()) == []
    tally("bad_inputs")


# ----------------------------------------------------------------------------- checkpoints


SOURCE_PROBLEMS = {  # what the pruning callbacks say about a bad source checkpoint
    "missing": (FileNotFoundError, "does not exist"),
    "truncated": (ValueError, "the file is truncated or corrupt"),
    "corrupt": (ValueError, "the file is truncated or corrupt"),
    "other_shapes": (ValueError, "it comes from a model of other shapes"),
}
SOURCE_USERS = {
    "ConvergedMask": lambda path: ConvergedMask(str(path), sparsity=0.6),
    "WeightRewind": lambda path: WeightRewind(step=0, source=str(path)),
}


@pytest.mark.parametrize("problem", SOURCE_PROBLEMS)
@pytest.mark.parametrize("user", SOURCE_USERS)
def test_bad_source_checkpoint_of_a_pruning_callback_is_refused(user, problem, inputs, make_data, tmp_path, tally):
    path = getattr(inputs, problem)
    error, message = SOURCE_PROBLEMS[problem]
    before, counter = file_states(tmp_path, inputs.root), StepCounter()
    with pytest.raises(error) as info:
        _fit(make_data(), tmp_path / "run", [SOURCE_USERS[user](path)], counter)
    _says(info.value, str(path), message)
    assert counter.steps == 0 and file_states(tmp_path, inputs.root) == before
    tally("bad_inputs")


@pytest.mark.parametrize("source", ["good", "ticket"])
@pytest.mark.parametrize("user", [*SOURCE_USERS, "PretrainedStart"])
def test_a_source_trained_with_another_sentencepiece_model_is_refused(user, source, inputs, make_data, tmp_path,
                                                                       tally):
    """The same vocabulary size, other pieces (the same corpus with another train_subset, say): before,
    an SLT round on it trained with exit 0 and its ticket translated word salad."""
    path = getattr(inputs, source)
    callback = PretrainedStart(str(path)) if user == "PretrainedStart" else SOURCE_USERS[user](path)
    before, counter = file_states(tmp_path, inputs.root), StepCounter()
    with pytest.raises(ValueError) as info:
        _fit(make_data(spm_model=str(inputs.other_spm)), tmp_path / "run", [callback], counter)
    _says(info.value, str(path), "was trained with another sentencepiece model", str(inputs.other_spm),
          "Use the checkpoint's model (data.spm_model) or the same data settings")
    assert counter.steps == 0 and file_states(tmp_path, inputs.root) == before
    tally("bad_inputs")


RESUME_PROBLEMS = {  # (error, message) for a wrong ckpt_path of fit or test
    "missing": (FileNotFoundError, "does not exist"),
    "truncated": (ValueError, "it is truncated or corrupt"),
    "corrupt": (ValueError, "it is truncated or corrupt"),
    "other_shapes": (ValueError, "holds a model of other shapes: model.embed.weight (200, 32) there, (200, 16) here"),
    "foreign": (ValueError, "holds a model of other shapes: no ['model.embed.weight'"),
    "other_vocab": (ValueError, "was trained with a vocabulary of 200 sentencepiece pieces, but this model has 150"),
    "other_spm": (ValueError, "was trained with another sentencepiece model"),
}
# On the command line LightningCLI rebuilds the model from the checkpoint's hyper-parameters, so a
# checkpoint of other sizes is simply resumed with its own sizes; a foreign one is named as such.
CLI_PROBLEMS = {**{k: v for k, v in RESUME_PROBLEMS.items() if k != "other_shapes"},
                "foreign": (ValueError, "was not written by a TranslationModule: its hyper-parameters "
                                        "['batch_size', 'compile', 'n_examples']")}


def _resume_case(inputs, problem: str) -> tuple[Path, dict]:
    """The checkpoint to pass and the data settings of the attempt (a foreign spm_model for the
    vocabulary cases: the good checkpoint itself is then the "wrong" one)."""
    if problem == "other_vocab":
        return inputs.good, {"spm_model": str(inputs.other_vocab)}
    if problem == "other_spm":
        return inputs.good, {"spm_model": str(inputs.other_spm)}
    return getattr(inputs, problem), {}


@pytest.mark.parametrize("problem", CLI_PROBLEMS)
@pytest.mark.parametrize("command", ["fit", "test"])
def test_wrong_ckpt_path_on_the_command_line_is_refused_before_the_run(command, problem, inputs, data_root, spm_cache,
                                                                         tmp_path, tally):
    ckpt, data = _resume_case(inputs, problem)
    cfg = cli_config(tmp_path, data_root, spm_cache)
    error, message = CLI_PROBLEMS[problem]
    before = file_states(tmp_path, inputs.root, spm_cache)
    with pytest.raises(error) as info:
        cli.main([command, "--config", str(cfg), "--ckpt_path", str(ckpt), *[f"--data.{k}={v}" for k, v in data.items()]])
    _says(info.value, str(ckpt), message)
    assert not (tmp_path / "run").exists()  # not even Lightning's log folder or config copy
    assert file_states(tmp_path, inputs.root, spm_cache) == before
    tally("bad_inputs")


@pytest.mark.parametrize("problem", RESUME_PROBLEMS)
@pytest.mark.parametrize("command", ["fit", "test"])
def test_wrong_ckpt_path_in_python_is_refused_before_any_step(command, problem, inputs, make_data, spm_cache, tmp_path,
                                                                tally):
    ckpt, data_settings = _resume_case(inputs, problem)
    error, message = RESUME_PROBLEMS[problem]
    data = make_data(**data_settings)
    before, counter = file_states(tmp_path, inputs.root, spm_cache), StepCounter()
    with pytest.raises(error) as info:
        if command == "fit":
            _fit(data, tmp_path / "run", [], counter, ckpt_path=str(ckpt))
        else:
            make_trainer(tmp_path / "run").test(make_module(data, output_dir=str(tmp_path / "out")), datamodule=data,
                                                ckpt_path=str(ckpt))
    _says(info.value, str(ckpt), message)
    assert counter.steps == 0 and file_states(tmp_path, inputs.root, spm_cache) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- mask files


def _mask_other_shapes(inputs, folder):
    wide = torch.load(inputs.other_shapes, weights_only=True)["state_dict"]
    masks = {name: wide[name] != 0 for name in inputs.masks}  # the right names, a wider model's shapes
    return masks, ["'model.embed.weight' has shape (200, 32), the model's is (200, 16)"]


def _mask_unknown_tensors(inputs, folder):
    masks = {f"decoder.extra{i}.weight": torch.ones(4, 4, dtype=torch.bool) for i in range(3)}
    return masks, ["does not match the model", "decoder.extra0.weight"]


MASK_CASES = [_mask_other_shapes, _mask_unknown_tensors]


def test_mask_file_covering_some_tensors_prunes_those_and_warns_naming_the_others(inputs, make_data, tmp_path):
    """A mask for two tensors of the model only (issue 14: partial sources): the others are
    unpruned, and a warning lists them with the exclude pattern that leaves them out."""
    masks = dict(list(inputs.masks.items())[:2])
    path = tmp_path / "mask.pt"
    torch.save(masks, path)
    data = make_data()
    module = make_module(data)
    with pytest.warns(UserWarning, match=r"has no mask for \d+ of the \d+ selected tensors, taken as unpruned") as seen:
        make_trainer(tmp_path / "run", max_steps=2, callbacks=[ConvergedMask(str(path))]).fit(module, datamodule=data)
    assert any("exclude=" in str(w.message) for w in seen)
    for name, mask in masks.items():
        assert int((module.get_parameter(name)[~mask] != 0).sum()) == 0


@pytest.mark.parametrize("case", MASK_CASES, ids=lambda case: case.__name__.removeprefix("_mask_"))
def test_mask_file_that_does_not_fit_the_model_is_refused(case, inputs, make_data, tmp_path, tally):
    masks, fragments = case(inputs, tmp_path)
    path = tmp_path / "mask.pt"
    torch.save(masks, path)
    before, counter = file_states(tmp_path), StepCounter()
    with pytest.raises(ValueError) as info:
        _fit(make_data(), tmp_path / "run", [ConvergedMask(str(path))], counter)
    _says(info.value, str(path), *fragments)
    assert counter.steps == 0 and file_states(tmp_path) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- tickets


_PREFIX = 52  # magic (8) + version (4) + header length (8) + header sha256 (32)


def _ticket_payload_byte(data: bytearray) -> None:
    header_len = struct.unpack_from("<Q", data, 12)[0]
    data[_PREFIX + header_len + 100] ^= 0xFF  # a byte of the first tensor section


def _ticket_header_byte(data: bytearray) -> None:
    data[_PREFIX + 10] ^= 0xFF  # a byte of the JSON header


def _ticket_version(data: bytearray) -> None:
    data[8:12] = struct.pack("<I", 99)


def _ticket_truncated(data: bytearray) -> None:
    del data[len(data) // 2 :]


def _ticket_not_a_ticket(data: bytearray) -> None:
    data[:8] = b"PK\x03\x04\x00\x00\x00\x00"


TICKET_CASES = [  # (damage, reader, message)
    (_ticket_payload_byte, read_ticket, "payload checksum mismatch: the ticket file is corrupted"),
    (_ticket_header_byte, read_ticket, "header checksum mismatch: the ticket file is corrupted"),
    (_ticket_version, read_ticket, "ticket format version 99 is not supported (this reader supports version 1)"),
    (_ticket_truncated, read_ticket, "ticket is truncated"),
    (_ticket_not_a_ticket, read_ticket, "not a lightning_slt ticket"),
    (_ticket_payload_byte, load_ticket, "payload checksum mismatch"),
    (_ticket_version, load_ticket, "format version 99 is not supported"),
]


@pytest.mark.parametrize(("damage", "reader", "message"), TICKET_CASES,
                         ids=[f"{c[1].__name__}-{c[0].__name__.removeprefix('_ticket_')}" for c in TICKET_CASES])
def test_damaged_ticket_is_refused(damage, reader, message, inputs, tmp_path, tally):
    data = bytearray(inputs.ticket.read_bytes())
    damage(data)
    path = tmp_path / "model.ticket"
    path.write_bytes(bytes(data))
    before = file_states(tmp_path)
    with pytest.raises(TicketError) as info:
        reader(path)
    _says(info.value, str(path), message)
    assert file_states(tmp_path) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- experiment directories


def test_directory_holding_another_experiment_is_left_untouched(tmp_path, tally):
    out = tmp_path / "exp"
    other = ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=["slt"], output_dir=str(out), targets=[0.5],
                             base_args=["--model.lr=0.001"])
    base, schedule, _ = plan(other)
    write_json(out / "experiment.json", {**_manifest(other, base, schedule), "config": other.to_dict()})
    write_json(out / "seed0" / "dense" / "metrics.json", {"run": "dense", "steps": 10})
    before = file_states(out)
    mine = ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=["slt"], output_dir=str(out), targets=[0.5])
    with pytest.raises(ValueError) as info:
        run_experiment(mine)
    _says(info.value, str(out), "holds a different experiment", "base_args: was ['--model.lr=0.001'], now []",
          "choose another output_dir or delete that folder")
    assert file_states(out) == before
    tally("bad_inputs")


def test_non_empty_directory_without_a_manifest_is_refused(tmp_path, tally):
    out = tmp_path / "exp"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "todo.txt").write_text("my own files")
    before = file_states(out)
    with pytest.raises(ValueError) as info:
        run_experiment(ExperimentConfig(base=[TINY_EXPERIMENT_BASE], methods=["slt"], output_dir=str(out), targets=[0.5]))
    _says(info.value, str(out), "is not empty and holds no experiment.json")
    assert file_states(out) == before
    tally("bad_inputs")


# ----------------------------------------------------------------------------- non-finite training


class Poison(Callback):
    """At ``step``, makes the loss NaN (``where="weights"``) or a gradient infinite (``"gradient"``);
    remembers the checkpoint files as they were just before."""

    def __init__(self, step: int, where: str, ckpt_dir: Path) -> None:
        self.step, self.where, self.ckpt_dir = step, where, ckpt_dir
        self.files_before: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.files_before = file_states(self.ckpt_dir)
            if self.where == "weights":
                with torch.no_grad():
                    pl_module.model.embed.weight[5].fill_(float("nan"))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.step and self.where == "gradient":
            pl_module.model.embed.weight.grad[5, 0] = float("inf")


NON_FINITE_CASES = [  # (where, the message names the failing step like this)
    ("weights", r"training loss is nan at global step 3; resume from the last good checkpoint (\S+)\. "),
    ("gradient", r"became NaN or infinite by global step 4; not writing a checkpoint with them: resume from the last "
                 r"good checkpoint (\S+)\. "),
]


@pytest.mark.parametrize(("where", "pattern"), NON_FINITE_CASES, ids=[c[0] for c in NON_FINITE_CASES])
def test_non_finite_training_stops_naming_the_step_and_a_good_checkpoint(where, pattern, make_data, tmp_path, tally):
    import re

    poison = Poison(3, where, tmp_path / "run" / "ckpt")
    with pytest.raises(FloatingPointError) as info:
        _fit(make_data(), tmp_path / "run", [poison], StepCounter(), max_steps=6)
    match = re.search(pattern, str(info.value))
    assert match, str(info.value)
    named = Path(match.group(1))
    assert named == tmp_path / "run" / "ckpt" / "last.ckpt"
    assert file_states(tmp_path / "run" / "ckpt") == poison.files_before  # the good checkpoint was not overwritten
    checkpoint = torch.load(named, weights_only=True)
    assert checkpoint["global_step"] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
    tally("bad_inputs")
