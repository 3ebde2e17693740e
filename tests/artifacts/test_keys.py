"""Every checkpoint key in one place: the names pinned (files written with them must stay readable),
and the WeightRewind state key, which must be the key Lightning itself generates."""

import pytest

from lightning_slt import WeightRewind
from lightning_slt.artifacts import keys


def test_the_keys_files_are_written_with():
    assert (keys.STATE_DICT_KEY, keys.HPARAMS_KEY, keys.GLOBAL_STEP_KEY, keys.EPOCH_KEY, keys.CALLBACKS_KEY) == (
        "state_dict", "hyper_parameters", "global_step", "epoch", "callbacks")  # Lightning's own
    assert (keys.STATE_KEY, keys.TOKENIZER_KEY, keys.RNG_KEY) == ("lightning_slt", "tokenizer_model_proto", "rng_states")
    assert (keys.VERSION, keys.MASKS, keys.PRUNING_CALLBACKS, keys.TICKET) == ("version", "masks", "callbacks", "ticket")
    assert keys.STATE_FORMAT_VERSION == 1
    assert (keys.TICKET_KIND, keys.WINNING_TICKET_KIND, keys.EXTRA_KIND, keys.EXTRA_REWIND_STEP) == (
        "ticket", "winning_ticket", "kind", "rewind_step")


@pytest.mark.parametrize("step", [0, 3, 150, 400_000])
def test_rewind_state_key_is_lightnings_key_and_reads_back(step):
    key = keys.rewind_state_key(step)
    assert key == f"WeightRewind{{'step': {step}}}" == WeightRewind(step=step).state_key
    assert keys.rewind_step_of(key) == step


def test_other_state_keys_have_no_rewind_step():
    for key in ("TrainTimeBudget", "WeightRewind", "WeightRewind{'step': -1}", "WeightRewind{'step': 3, 'x': 1}",
                "ModelCheckpoint{'monitor': 'val/bleu'}", 7, None):
        assert keys.rewind_step_of(key) is None, key
    assert keys.rewind_state_key(3.0) == "WeightRewind{'step': 3}"  # an int, whatever number type came in
