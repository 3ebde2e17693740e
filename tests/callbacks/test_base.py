"""Ticket assembly: ConvergedMask + WeightRewind (+ SignOnlyReinit, controls), bit for bit."""

import itertools
import re
import math

import pytest
import torch
from torch.nn.utils import prune

from lightning_slt import ConvergedMask, RandomMask, RandomReinit, SignOnlyReinit, WeightRewind
from lightning_slt.artifacts import load_source
from lightning_slt.pruning import initialiser_values, magnitude_masks, prunable_parameters

from .tiny import Probe, fresh_module, make_trainer, params_of


def _theta(ckpt, step):
    return load_source(ckpt).snapshots[step]


def _expected_masks(ckpt, sparsity):
    source = load_source(ckpt)
    module = fresh_module(1)
    names = prunable_parameters(module)
    return magnitude_masks({n: source.weights[n] for n in names}, sparsity)


def _run(callbacks, steps=1, seed=1):
    module = fresh_module(seed)  # a different init than the source run: the ticket must replace it
    probe = Probe()
    make_trainer(steps, [*callbacks, probe]).fit(module)
    return module, probe


def test_state_key_tells_rewind_steps_apart():
    assert WeightRewind(step=3).state_key == "WeightRewind{'step': 3}"


def test_slt_start_equals_theta_k_times_mask_bit_for_bit(dense_ckpt):
    _, probe = _run([ConvergedMask(str(dense_ckpt), sparsity=0.5), WeightRewind(step=3, source=str(dense_ckpt))])
    theta3, masks = _theta(dense_ckpt, 3), _expected_masks(dense_ckpt, 0.5)
    for name, value in probe.start.items():
        expected = theta3[name] * masks[name] + 0.0 if name in masks else theta3[name]
        assert torch.equal(value, expected), name
        assert not torch.signbit(value[value == 0]).any()  # +0.0, not -0.0
    for name, mask in masks.items():
        assert int((~mask).sum()) == round(0.5 * mask.numel())


def test_lt_rewinds_to_theta_0(dense_ckpt):
    _, probe = _run([WeightRewind(step=0, source=str(dense_ckpt)), ConvergedMask(str(dense_ckpt), sparsity=0.3)])
    theta0, masks = _theta(dense_ckpt, 0), _expected_masks(dense_ckpt, 0.3)
    assert all(torch.equal(probe.start[n], theta0[n] * masks[n] + 0.0) for n in masks)
    assert torch.equal(probe.start["net.1.weight"], theta0["net.1.weight"])  # LayerNorm rewound, not pruned


def test_sign_only_reinit_values_are_plus_minus_fan_avg_bound_per_tensor(dense_ckpt):
    _, probe = _run([SignOnlyReinit(), ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    theta3, masks = _theta(dense_ckpt, 3), _expected_masks(dense_ckpt, 0.5)
    for name, mask in masks.items():
        fan_out, fan_in = theta3[name].shape
        alpha = math.sqrt(6 / (fan_in + fan_out))
        value = probe.start[name]
        assert torch.equal(value[mask].abs(), torch.full_like(value[mask], alpha)), name
        assert torch.equal(torch.sign(value[mask]), torch.where(theta3[name][mask] < 0, -1.0, 1.0))
        assert (value[~mask] == 0).all()


def test_same_ticket_whatever_the_callback_order(dense_ckpt):
    tickets = []
    for order in itertools.permutations(range(3)):
        parts = [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), SignOnlyReinit()]
        _, probe = _run([parts[i] for i in order])
        tickets.append(probe.start)
    for other in tickets[1:]:
        assert all(torch.equal(tickets[0][n], other[n]) for n in tickets[0])


def test_controls_random_mask_random_reinit_and_random_sign(dense_ckpt):
    _, probe = _run([RandomMask(0.5, seed=7), WeightRewind(3, source=str(dense_ckpt))])
    _, again = _run([RandomMask(0.5, seed=7), WeightRewind(3, source=str(dense_ckpt))])
    masks = _expected_masks(dense_ckpt, 0.5)
    for name, mask in masks.items():
        random_mask = probe.start[name] != 0
        assert int((~random_mask).sum()) == round(0.5 * mask.numel())
        assert torch.equal(probe.start[name], again.start[name])
    assert any(not torch.equal(probe.start[n] != 0, masks[n]) for n in masks)

    _, reinit = _run([RandomReinit(seed=2), ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    params = {n: _theta(dense_ckpt, 3)[n] for n in masks}
    module = fresh_module(5)
    fresh, how = initialiser_values(module, [n for n, _ in module.named_parameters()], seed=2)
    assert how == "Embedding.reset_parameters, LayerNorm.reset_parameters, Linear.reset_parameters"
    for name, mask in masks.items():
        assert torch.equal(reinit.start[name], fresh[name] * mask + 0.0)
    for name in ("net.0.bias", "net.1.weight", "net.1.bias"):  # every tensor is re-drawn, not only matrices
        assert torch.equal(reinit.start[name], fresh[name])
    assert not torch.equal(reinit.start["net.0.bias"], _theta(dense_ckpt, 3)["net.0.bias"])

    _, signs = _run([ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), SignOnlyReinit(sign="random", seed=1)])
    agree = sum(int((torch.sign(signs.start[n]) == torch.sign(params[n]))[masks[n]].sum()) for n in masks)
    kept = sum(int(m.sum()) for m in masks.values())
    assert 0.3 < agree / kept < 0.7


def test_nested_rounds_and_targets_must_increase(dense_ckpt, tmp_path):
    module, _ = _run([ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), WeightRewind(2)], steps=6)
    round1 = tmp_path / "r1.ckpt"
    trainer = make_trainer(6, [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), WeightRewind(2)])
    trainer.fit(fresh_module(1))
    trainer.save_checkpoint(round1)
    first = load_source(round1).masks
    module, _ = _run([ConvergedMask(str(round1), 0.7), WeightRewind(2, source=str(round1))])
    for name, mask in first.items():
        now = prunable_parameters(module)[name] != 0
        assert not (now & ~mask).any() and int((~now).sum()) == round(0.7 * mask.numel())
    with pytest.raises(ValueError, match="targets must increase"):
        make_trainer(1, [ConvergedMask(str(round1), 0.3)]).fit(fresh_module(1))


@pytest.mark.parametrize("kind", ["state_dict", "torch_prune", "model_pruning", "openlth"])
def test_reads_masks_of_other_tools(kind, dense_ckpt, tmp_path):
    """Plain state_dict with zeros, torch.nn.utils.prune, Lightning ModelPruning, OpenLTH mask.pth."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelPruning

    theirs = fresh_module(3)
    path = tmp_path / "source.pt"
    if kind == "model_pruning":
        trainer = make_trainer(-1, [ModelPruning("l1_unstructured", amount=0.5, use_global_unstructured=False,
                                                make_pruning_permanent=False, parameter_names=["weight"],
                                                parameters_to_prune=[(theirs.net[0], "weight"), (theirs.net[3], "weight")],
                                                prune_on_train_epoch_end=True)], max_epochs=1)
        trainer.fit(theirs)
        trainer.save_checkpoint(path)
        expected = {n: load_source(path).masks[n] for n in ("net.0.weight", "net.3.weight")}
    else:
        for layer in (theirs.net[0], theirs.net[3]):
            prune.l1_unstructured(layer, "weight", amount=0.5)
        expected = {"net.0.weight": theirs.net[0].weight_mask.bool(), "net.3.weight": theirs.net[3].weight_mask.bool()}
        if kind == "torch_prune":
            torch.save(theirs.state_dict(), path)
        elif kind == "openlth":
            path = tmp_path / "mask.pth"
            torch.save({n: m.int() for n, m in expected.items()}, path)
        else:
            for layer in (theirs.net[0], theirs.net[3]):
                prune.remove(layer, "weight")
            torch.save(theirs.state_dict(), path)
    assert isinstance(pl.__version__, str)
    module, probe = _run([ConvergedMask(str(path), sparsity=None, include=["net.*.weight"], exclude=["net.1.*"])])
    for name, mask in expected.items():
        assert torch.equal(probe.start[name] != 0, mask), name


def test_plain_state_dict_serves_as_rewind_source(tmp_path):
    theirs = fresh_module(4)
    path = tmp_path / "theta_k.pt"
    torch.save(theirs.state_dict(), path)
    _, probe = _run([WeightRewind(5, source=str(path))])
    assert all(torch.equal(probe.start[n], p) for n, p in theirs.state_dict().items())


def test_bad_sources_fail_before_training(dense_ckpt, tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(dense_ckpt.read_bytes()[:300])
    other = tmp_path / "other.pt"
    torch.save({"net.0.weight": torch.ones(3, 3), "net.3.weight": torch.ones(20, 16)}, other)
    cases = [
        (ConvergedMask(str(tmp_path / "missing.ckpt"), 0.5), FileNotFoundError, "does not exist"),
        (ConvergedMask(str(corrupt), 0.5), ValueError, "truncated or corrupt"),
        (ConvergedMask(str(other), 0.5, include=["net.0.weight", "net.3.weight"]), ValueError, r"shape \(3, 3\).*other shapes"),
        (WeightRewind(7, source=str(dense_ckpt)), ValueError, r"has no θ_7: it recorded steps \[0, 3\]"),
        (WeightRewind(50), ValueError, "beyond the run"),
    ]
    for callback, error, message in cases:
        module = fresh_module()
        before = {n: p.clone() for n, p in module.named_parameters()}
        trainer = make_trainer(10, [callback])
        with pytest.raises(error, match=message):
            trainer.fit(module)
        assert trainer.global_step == 0
        assert all(torch.equal(before[n], p) for n, p in module.named_parameters())


def test_restore_optimizer_restores_adam_moments_and_lr_schedule(tmp_path):
    path = tmp_path / "src.ckpt"
    trainer = make_trainer(8, [WeightRewind(4, restore_optimizer=True)])
    trainer.fit(fresh_module(0))
    trainer.save_checkpoint(path)
    recorded = load_source(path).optimizer_states[4]
    rewind = WeightRewind(4, source=str(path), restore_optimizer=True)
    module = fresh_module(1)
    trainer = make_trainer(1, [rewind])

    class Check(Probe):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            opt = trainer.optimizers[0]
            self.exp_avg = [opt.state[p]["exp_avg"].clone() for p in pl_module.parameters()]
            self.lr = opt.param_groups[0]["lr"]

    check = Check()
    trainer.callbacks.append(check)
    trainer.fit(module)
    saved = recorded["optimizer"][0]["state"]
    assert all(torch.equal(a, saved[i]["exp_avg"]) for i, a in enumerate(check.exp_avg))
    assert check.lr == pytest.approx(0.01 / (1 + 4))


@pytest.mark.parametrize("callbacks, what", [
    (lambda c: [ConvergedMask(c, 0.5), ConvergedMask(c, 0.6)], "2 callbacks set the ticket's mask: ConvergedMask"),
    (lambda c: [RandomMask(0.5, seed=1), RandomMask(0.5, seed=2)], "2 callbacks set the ticket's mask: RandomMask"),
    (lambda c: [ConvergedMask(c, 0.5), RandomMask(0.5)], "RandomMask(sparsity=0.5, scope='layerwise', seed=0)"),
    (lambda c: [WeightRewind(3, source=c), WeightRewind(0, source=c)], "2 callbacks set the ticket's weights"),
])
def test_two_sources_of_one_ingredient_are_refused_before_training(dense_ckpt, callbacks, what):
    """The README says the callbacks' order does not matter; with two mask (or weight) sources
    the list order would silently pick the winner."""
    module = fresh_module(1)
    before = params_of(module)
    with pytest.raises(ValueError, match=re.escape(what)) as err:
        make_trainer(2, callbacks(str(dense_ckpt))).fit(module)
    assert "the list order must not choose" in str(err.value)
    assert all(torch.equal(before[n], p) for n, p in params_of(module).items())  # nothing trained


def test_every_checkpoint_says_how_its_ticket_was_assembled(dense_ckpt, tmp_path):
    trainer = make_trainer(2, [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt))])
    trainer.fit(fresh_module(1))
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    ticket = torch.load(tmp_path / "x.ckpt", weights_only=True)["lightning_slt"]["ticket"]
    masks = _expected_masks(dense_ckpt, 0.5)
    assert ticket == {"assembled_by": ["WeightRewind", "ConvergedMask"], "kept": sum(int(m.sum()) for m in masks.values()),
                      "kept_zero": 0}
