"""The typed run checkpoint: one reader of our layout, the state's version read, kinds as values."""

import json

import pytest
import torch

from lightning_slt import ConvergedMask, WeightRewind
from lightning_slt.artifacts import Kind, keys, load_source, run_checkpoint
from lightning_slt.artifacts.checkpoint import pruning_state, rewind_state
from lightning_slt.export.checkpoint import checkpoint_masks

from ..callbacks.tiny import fresh_module, make_trainer


@pytest.fixture(scope="module")
def pruned_ckpt(dense_ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("pruned") / "last.ckpt"
    trainer = make_trainer(4, [ConvergedMask(str(dense_ckpt), sparsity=0.5), WeightRewind(step=3, source=str(dense_ckpt))])
    trainer.fit(fresh_module(1))
    trainer.save_checkpoint(path)
    return path


def test_run_checkpoint_reads_what_the_callbacks_wrote(pruned_ckpt, dense_ckpt):
    raw = torch.load(pruned_ckpt, map_location="cpu", weights_only=True)
    run = run_checkpoint(raw, str(pruned_ckpt))
    assert run.kind is Kind.LIGHTNING_SLT and run.global_step == 4 == run.step
    assert run.masks.keys() == raw[keys.STATE_KEY][keys.MASKS].keys() and all(m.dtype == torch.bool for m in run.masks.values())
    assert [cb["class"] for cb in run.callbacks] == ["ConvergedMask", "WeightRewind"]
    assert run.ticket["assembled_by"] == ["WeightRewind", "ConvergedMask"]
    assert run.rewind_steps == [3] and run.snapshots.keys() == {3}
    assert run.weights.keys() == raw[keys.STATE_DICT_KEY].keys()
    dense = run_checkpoint(torch.load(dense_ckpt, map_location="cpu", weights_only=True))
    assert dense.kind is Kind.LIGHTNING and dense.masks is None and dense.rewind_steps == [0, 3]


def test_writers_and_keys_agree_with_the_callbacks():
    assert WeightRewind(step=7).state_key == keys.rewind_state_key(7) and keys.rewind_step_of("WeightRewind{'step': 7}") == 7
    assert keys.rewind_step_of("WeightRewindX{'step': 7}") is None and keys.rewind_step_of("TrainTimeBudget") is None
    masks = {"w": torch.ones(2, 2, dtype=torch.bool)}
    checkpoint = {keys.STATE_KEY: pruning_state(masks, [], None),
                  keys.CALLBACKS_KEY: {keys.rewind_state_key(5): rewind_state(5, {"w": torch.zeros(2, 2)}, None, None)}}
    run = run_checkpoint(checkpoint)
    assert run.masks.keys() == {"w"} and run.snapshots.keys() == {5} and run.optimizer_states == {}


def test_a_newer_state_version_is_refused_by_every_reader(pruned_ckpt, tmp_path):
    raw = torch.load(pruned_ckpt, map_location="cpu", weights_only=True)
    raw[keys.STATE_KEY][keys.VERSION] = keys.STATE_FORMAT_VERSION + 1
    newer = tmp_path / "newer.ckpt"
    torch.save(raw, newer)
    message = rf"has format version {keys.STATE_FORMAT_VERSION + 1}, newer than the {keys.STATE_FORMAT_VERSION}.*upgrade"
    with pytest.raises(ValueError, match=message):
        load_source(newer)
    with pytest.raises(ValueError, match=message):
        checkpoint_masks(raw, {})
    with pytest.raises(ValueError, match=message):
        make_trainer(2, [ConvergedMask(str(newer), sparsity=0.6)]).fit(fresh_module(0))


def test_kinds_print_compare_and_serialise_as_their_values():
    assert Kind.WINNING_TICKET == "winning_ticket" and f"{Kind.TICKET}" == str(Kind.TICKET) == "ticket"
    assert json.dumps({"kind": Kind.OPENLTH_MASK}) == '{"kind": "openlth_mask"}'
