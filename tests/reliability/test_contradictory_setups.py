"""Contradictory pruning set-ups: refused with what, where and the fix, before any training step,
with no file written or changed.

1. A sparsity whose exact count ``round(s * n)`` prunes every entry of a tensor (layerwise) or of
   the whole selection (global), wherever masks are computed: the schedule's final target at
   setup, the mask callbacks, the mask functions themselves. A global mask that empties single
   tensors is the user's choice of scope, so it warns, naming them, instead (not counted).
2. A ``GradualMagnitudePruning`` target below the sparsity of the ticket it starts from: masks
   are nested, so it would never prune; refused at ticket assembly, where the mask is first known.

Every refused case is one bad input of the suite's figures line.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from lightning_slt import ConvergedMask, GradualMagnitudePruning, RandomMask, WeightRewind, cli
from lightning_slt.pruning import magnitude_masks, random_masks, random_masks_like

from .test_bad_input import _cli_args, _fit, _says
from .tiny import StepCounter, cli_config, file_states, make_data, make_module, make_trainer

SMALLEST = "'model.decoder.layers.0.cross_attn.k_proj.weight'"  # 16 x 16, the first of the 12 smallest matrices
SELECTED = 8320  # entries of the tiny model's 17 prunable matrices


@pytest.fixture(scope="module")
def ticket(tmp_path_factory, data_root, spm_cache) -> SimpleNamespace:
    """A finished tiny run at 50 % (layerwise MP) that recorded θ0: a previous round to start from."""
    root = tmp_path_factory.mktemp("ticket")
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(root, max_steps=4, callbacks=[GradualMagnitudePruning(0.5, end_step=2, frequency=1),
                                                        WeightRewind(step=0)])
    trainer.fit(make_module(data), datamodule=data)
    trainer.save_checkpoint(root / "round1.ckpt")
    return SimpleNamespace(root=root, ckpt=str(root / "round1.ckpt"))


def _refused_before_training(callbacks: list, make_data, tmp_path, roots: list) -> ValueError:
    before, counter = file_states(tmp_path, *roots), StepCounter()
    with pytest.raises(ValueError) as info:
        _fit(make_data(), tmp_path / "run", callbacks, counter)
    assert counter.steps == 0 and file_states(tmp_path, *roots) == before
    return info.value


# ----------------------------------------------------------------------------- 1. a tensor left empty


EMPTYING_CASES = [  # (id, callbacks from the ticket, message fragments)
    ("mp_final_empties_small_matrices", lambda t: [GradualMagnitudePruning(0.999, end_step=2, frequency=1)],
     ["GradualMagnitudePruning final_sparsity 0.999 prunes all 256 entries of", SMALLEST, "and 11 more tensors",
      "round(0.999 * 256) = 256", "at most 0.996093 (255 of 256 pruned)", "or exclude that tensor"]),
    ("mp_global_final_empties_everything", lambda t: [GradualMagnitudePruning(0.99999, end_step=2, frequency=1,
                                                                              scope="global")],
     [f"final_sparsity 0.99999 (scope='global') prunes all {SELECTED} entries of the 17 selected tensors",
      f"at most {int((SELECTED - 1) / SELECTED * 1e6) / 1e6}"]),
    ("mp_initial_fine_final_empties", lambda t: [GradualMagnitudePruning(0.9999, initial_sparsity=0.5, end_step=2,
                                                                         frequency=1)],
     ["final_sparsity 0.9999 prunes all 256 entries of", SMALLEST]),  # refused at setup, not at step 2
    ("random_mask_empties", lambda t: [RandomMask(sparsity=0.999)],
     ["sparsity 0.999 prunes all 256 entries of", SMALLEST, "at most 0.996093"]),
    ("random_mask_global_empties_everything", lambda t: [RandomMask(sparsity=0.99999, scope="global")],
     [f"prunes all {SELECTED} entries of the 17 selected tensors"]),
    ("converged_mask_empties", lambda t: [ConvergedMask(t.ckpt, sparsity=0.999)],
     ["sparsity 0.999 prunes all 256 entries of", SMALLEST, "at most 0.996093"]),
]


@pytest.mark.parametrize(("build", "says"), [c[1:] for c in EMPTYING_CASES], ids=[c[0] for c in EMPTYING_CASES])
def test_sparsity_that_leaves_a_tensor_no_weight_is_refused_before_training(build, says, ticket, make_data, tmp_path,
                                                                            tally):
    error = _refused_before_training(build(ticket), make_data, tmp_path, [ticket.root])
    _says(error, *says)
    tally("bad_inputs")


def _weights() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"big.weight": torch.randn(8, 8, generator=g), "small.weight": torch.randn(4, 4, generator=g)}


FUNCTION_CASES = [  # (id, call, fragments): the pure-torch mask functions refuse the same counts
    ("magnitude_layerwise", lambda w: magnitude_masks(w, 0.97),
     ["sparsity 0.97 prunes all 16 entries of 'small.weight'", "at most 0.9375 (15 of 16 pruned)"]),
    ("random_layerwise", lambda w: random_masks(w, 0.97, seed=3),
     ["sparsity 0.97 prunes all 16 entries of 'small.weight'", "at most 0.9375"]),
    ("magnitude_global", lambda w: magnitude_masks(w, 0.995, "global"),
     ["(scope='global') prunes all 80 entries of the 2 selected tensors", "at most 0.9875"]),
    ("nesting_in_an_empty_mask", lambda w: magnitude_masks(
        w, 0.5, current={"small.weight": torch.zeros(4, 4, dtype=torch.bool)}),
     ["already prunes all 16 entries of 'small.weight'", "start from a mask that keeps some of it, or exclude it"]),
]


@pytest.mark.parametrize(("call", "says"), [c[1:] for c in FUNCTION_CASES], ids=[c[0] for c in FUNCTION_CASES])
def test_mask_functions_refuse_a_count_that_empties_a_tensor(call, says, tally):
    with pytest.raises(ValueError) as info:
        call(_weights())
    _says(info.value, *says)
    tally("bad_inputs")


def test_the_largest_sparsity_the_message_offers_keeps_one_entry():
    for n in (2, 3, 7, 15, 16, 256, 1000, 8320):
        weights = {"w": torch.arange(1.0, n + 1)}
        with pytest.raises(ValueError) as info:
            magnitude_masks(weights, 1 - 1e-9)
        offered = float(str(info.value).split("at most ")[1].split(" ")[0])
        assert int(magnitude_masks(weights, offered)["w"].sum()) == 1, n


def test_global_mask_that_empties_one_tensor_warns_naming_it_and_the_random_control_copies_it():
    """Global ranking may legitimately take a whole tensor of tiny weights: warned, not refused."""
    weights = {"big.weight": torch.randn(8, 8), "tiny.weight": torch.full((2, 3), 1e-6)}
    with pytest.warns(UserWarning, match=r"global sparsity 0.2 prunes every entry of 1 tensor\(s\): 'tiny.weight' "
                                         r"\(6 entries\).*scope='layerwise', a lower sparsity, or exclude them"):
        masks = magnitude_masks(weights, 0.2, "global")
    assert not masks["tiny.weight"].any() and masks["big.weight"].any()
    with pytest.warns(UserWarning, match="copies its reference's counts.*'tiny.weight' \\(6 entries\\)"):
        control = random_masks_like(masks, seed=1)
    assert not control["tiny.weight"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        magnitude_masks(weights, 0.2, "layerwise")  # keeps entries of every tensor: silent


# ----------------------------------------------------------------------------- 2. target below the ticket


FIX = ["masks are nested, so this schedule would never prune anything", "Raise final_sparsity above it",
       "SLT-MP: initial_sparsity = the ticket's sparsity, final_sparsity = the target"]
BELOW_TICKET_CASES = [  # (id, callbacks from the ticket, message fragments)
    # declared by the mask callback over the same tensors and scope: refused at setup
    ("converged_80_then_mp_to_60", lambda t: [ConvergedMask(t.ckpt, sparsity=0.8), GradualMagnitudePruning(
        0.6, end_step=2, frequency=1)], ["GradualMagnitudePruning: final_sparsity 0.6 is below the sparsity 0.8 of "
                                         "the ticket's mask (ConvergedMask(sparsity=0.8, scope='layerwise'))", *FIX]),
    ("mp_listed_before_its_mask", lambda t: [GradualMagnitudePruning(0.6, initial_sparsity=0.3, end_step=2,
                                                                     frequency=1), ConvergedMask(t.ckpt, sparsity=0.8)],
     ["final_sparsity 0.6 is below the sparsity 0.8 of the ticket's mask"]),  # phases, not the list, order the ticket
    ("random_80_then_mp_to_50", lambda t: [RandomMask(sparsity=0.8, seed=1), GradualMagnitudePruning(
        0.5, end_step=2, frequency=1)], ["final_sparsity 0.5 is below the sparsity 0.8", "RandomMask(sparsity=0.8"]),
    ("global_ticket_global_mp", lambda t: [RandomMask(sparsity=0.8, scope="global"), GradualMagnitudePruning(
        0.7, end_step=2, frequency=1, scope="global")], ["final_sparsity 0.7 is below the sparsity 0.8", "scope='global'"]),
    ("slt_mp_with_the_ticket_above_the_target", lambda t: [ConvergedMask(t.ckpt, sparsity=0.9), WeightRewind(
        step=0, source=t.ckpt), GradualMagnitudePruning(0.85, initial_sparsity=0.6, end_step=2, frequency=1)],
     ["final_sparsity 0.85 is below the sparsity 0.9"]),
    # known only once assembled, from exact counts: refused at assembly (on_train_start)
    ("source_own_mask_then_mp_below", lambda t: [ConvergedMask(t.ckpt), GradualMagnitudePruning(
        0.4, end_step=2, frequency=1)], ["final_sparsity 0.4 is below the 0.5000 the ticket's mask already prunes over "
                                         "the 17 selected tensors (layerwise; even the least pruned, ", *FIX]),
    ("global_ticket_past_a_layerwise_mp", lambda t: [RandomMask(sparsity=0.8, scope="global"), GradualMagnitudePruning(
        0.3, end_step=2, frequency=1)], ["final_sparsity 0.3 is below the 0.8000 the ticket's mask already prunes",
                                         "(layerwise; even the least pruned, "]),
]


@pytest.mark.parametrize(("build", "says"), [c[1:] for c in BELOW_TICKET_CASES], ids=[c[0] for c in BELOW_TICKET_CASES])
def test_mp_target_below_the_tickets_sparsity_is_refused_at_assembly(build, says, ticket, make_data, tmp_path, tally):
    error = _refused_before_training(build(ticket), make_data, tmp_path, [ticket.root])
    _says(error, *says)
    tally("bad_inputs")


def test_mp_below_the_ticket_in_a_cli_config_is_refused_before_any_file(ticket, data_root, spm_cache, tmp_path,
                                                                             tally):
    extra = {"trainer": {"callbacks": [
        {"class_path": "lightning_slt.ConvergedMask", "init_args": {"checkpoint": ticket.ckpt, "sparsity": 0.8}},
        {"class_path": "lightning_slt.GradualMagnitudePruning",
         "init_args": {"final_sparsity": 0.6, "initial_sparsity": 0.6, "end_step": 2, "frequency": 1}}]}}
    command = _cli_args(tmp_path, cli_config(tmp_path, data_root, spm_cache), extra, [])
    before = file_states(tmp_path, spm_cache, ticket.root)
    with pytest.raises(ValueError) as info:  # the command exits non-zero with this traceback
        cli.main(command)
    _says(info.value, "final_sparsity 0.6 is below the sparsity 0.8 of the ticket's mask", "Raise final_sparsity")
    assert file_states(tmp_path, spm_cache, ticket.root) == before  # no config copy, log or checkpoint
    tally("bad_inputs")


@pytest.mark.parametrize(("mask", "final"), [
    (lambda t: ConvergedMask(t.ckpt, sparsity=0.8), 0.8),
    (lambda t: ConvergedMask(t.ckpt, sparsity=0.8), 0.9),
    (lambda t: RandomMask(sparsity=0.8, scope="global"), 0.8),  # raises the tensors the global ticket left below 0.8
], ids=["equal_target_keeps_the_ticket", "higher_target_prunes", "layerwise_floor_on_a_global_ticket"])
def test_mp_target_at_or_above_the_ticket_still_trains(mask, final, ticket, make_data, tmp_path):
    counter = StepCounter()
    _fit(make_data(), tmp_path / "run", [mask(ticket), GradualMagnitudePruning(final, end_step=2, frequency=1)], counter)
    assert counter.steps == 4
