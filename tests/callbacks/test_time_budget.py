"""Schedules that a time budget or the checkpoints cannot complete are warned about or refused.

Budgets run on a fake clock (one second per training step, ten per validation) that the real
``TrainTimeBudget`` and Lightning's real ``Timer`` (``max_time``) read, so the projected stop step
is exact and the real stop can be compared with it. The MP recipes are checked as their headers
write them: parsed, and one run of the header's command at tiny sizes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import lightning_slt.callbacks.time_budget as time_budget_module
from lightning_slt import GradualMagnitudePruning, cli
from lightning_slt.callbacks import TrainTimeBudget
from lightning_slt.checkpointing import BestAfterStep
from lightning_slt.pruning import cubic_sparsity

from .tiny import REPO_ROOT, TinyModule, make_trainer

CONF = REPO_ROOT / "conf"
RECIPES = ["gradual_mp.yaml", "slt_mp.yaml"]


class ValidatingTiny(TinyModule):
    """The tiny module with a validation loop (the warning waits for the first validation)."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", F.cross_entropy(self.forward_net(self.embed(x).mean(1)), y))

    def val_dataloader(self):
        g = torch.Generator().manual_seed(1)
        return DataLoader(TensorDataset(torch.randint(0, 20, (8, 5), generator=g), torch.randint(0, 20, (8,), generator=g)),
                          batch_size=8)


class FakeClock(Callback):
    """Advances a fake clock by ``step_s`` per training step and ``validation_s`` per validation."""

    def __init__(self, step_s: float = 1.0, validation_s: float = 10.0) -> None:
        self.now, self.step_s, self.validation_s = 1000.0, step_s, validation_s

    def __call__(self) -> float:
        return self.now

    def on_train_batch_end(self, *args) -> None:
        self.now += self.step_s

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.now += self.validation_s


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The fake clock, read by TrainTimeBudget (perf_counter) and Lightning's Timer (monotonic)."""
    import pytorch_lightning.callbacks.timer as timer_module

    fake = FakeClock()
    monkeypatch.setattr(time_budget_module, "time", SimpleNamespace(perf_counter=fake))
    monkeypatch.setattr(timer_module, "time", SimpleNamespace(monotonic=fake))
    return fake


def _fit(callbacks: list, max_steps: int = 100, **trainer) -> tuple[GradualMagnitudePruning, list[str], object]:
    """A tiny fit validating every 20 steps; returns the GMP, the GMP warnings and the trainer."""
    gmp = next(cb for cb in callbacks if isinstance(cb, GradualMagnitudePruning))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = make_trainer(max_steps, callbacks, val_check_interval=20, check_val_every_n_epoch=None,
                           limit_val_batches=1, **trainer)
        fit.fit(ValidatingTiny(n_examples=64))
    return gmp, [str(w.message) for w in caught if "GradualMagnitudePruning:" in str(w.message)], fit


def test_train_time_budget_that_stops_the_ramp_early_is_warned_about_with_the_numbers(clock):
    # 1 step/s of training (validation excluded), 60 s: the run stops at step 60, the ramp ends at 80.
    gmp = GradualMagnitudePruning(0.8, end_step=80, frequency=10)
    gmp, warned, trainer = _fit([clock, gmp, TrainTimeBudget(minutes=1)])
    reached = cubic_sparsity(60, 0.8, 0.0, 0, 80)  # the last pruning step before the stop is 60
    assert len(warned) == 1, warned
    message = warned[0]
    for fragment in ("1 steps/s", "TrainTimeBudget(minutes=1)", "near step 60", "ramp ends at step 80",
                     f"{reached:.4g} there instead of 0.8", "Raise the budget", "--trainer.max_time=null",
                     "shorten the ramp (end_step <= 60"):
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert trainer.global_step == 60 and gmp.state_dict()["sparsity"] == pytest.approx(reached)  # as projected


def test_max_time_that_stops_the_ramp_early_is_warned_about_counting_validation_too(clock):
    # max_time counts validation: 20 steps + 10 s of validation in 30 s, so 2/3 step/s; 30 s left.
    gmp = GradualMagnitudePruning(0.8, end_step=80, frequency=10)
    gmp, warned, trainer = _fit([clock, gmp], max_time={"seconds": 60})
    assert len(warned) == 1, warned
    for fragment in ("0.667 steps/s", "max_time (60 s)", "near step 40", "ramp ends at step 80",
                     f"{cubic_sparsity(40, 0.8, 0.0, 0, 80):.4g} there instead of 0.8"):
        assert fragment in warned[0], f"{fragment!r} missing from: {warned[0]}"
    assert trainer.global_step < 80


@pytest.mark.parametrize("budget", [
    {"callbacks": [TrainTimeBudget(minutes=2)]},                              # stops at 120, after the ramp
    {"max_time": {"seconds": 200}},                                           # ~133 steps
    {"callbacks": [TrainTimeBudget(minutes=0.5), TrainTimeBudget(minutes=None)]},  # the later budget replaces the first
    {},
], ids=["budget_suffices", "max_time_suffices", "later_budget_switches_it_off", "no_budget"])
def test_no_warning_when_the_budget_lets_the_ramp_end(clock, budget):
    budget = dict(budget)
    gmp = GradualMagnitudePruning(0.8, end_step=80, frequency=10)
    gmp, warned, trainer = _fit([clock, gmp, *budget.pop("callbacks", [])], **budget)
    assert warned == [] and trainer.global_step == 100 and gmp.state_dict()["sparsity"] == 0.8


def test_only_the_last_train_time_budget_acts():
    first, last = TrainTimeBudget(minutes=60), TrainTimeBudget(minutes=None)
    make_trainer(3, [first, last]).fit(TinyModule())
    assert (first.active, last.active) == (False, True)
    assert first.remaining_minutes == last.remaining_minutes == float("inf")
    with pytest.raises(ValueError, match="minutes must be a positive number, or null for no limit; got 0"):
        TrainTimeBudget(minutes=0)


@pytest.mark.parametrize(("checkpoint", "warns"), [
    (lambda d: ModelCheckpoint(dirpath=d, monitor="val/loss"), True),
    (lambda d: BestAfterStep(after_step=40, dirpath=d, monitor="val/loss"), True),  # before the ramp's end
    (lambda d: BestAfterStep(after_step=80, dirpath=d, monitor="val/loss"), False),
    (lambda d: ModelCheckpoint(dirpath=d, save_last=True, save_top_k=0), False),    # ranks nothing
], ids=["unrestricted", "restricted_too_early", "restricted_to_ramp_end", "last_only"])
def test_best_checkpoint_not_restricted_to_the_final_sparsity_is_warned_about(checkpoint, warns, tmp_path):
    gmp = GradualMagnitudePruning(0.8, end_step=80, frequency=10)
    _, warned, _ = _fit([gmp, checkpoint(tmp_path)], enable_checkpointing=True)
    assert bool(warned) == warns, warned
    if warns:
        assert "before step 80" in warned[0] and "BestAfterStep(after_step=80" in warned[0]


# ----------------------------------------------------------------------------- the MP recipes


def _recipe(name: str, *overrides: str) -> list[str]:
    return ["fit", "--config", str(CONF / "multi30k_cpu.yaml"), "--config", str(CONF / "pruning" / name), *overrides]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_command_resolves_to_no_time_limit_and_a_best_checkpoint_at_the_ramp_end(name):
    header = (CONF / "pruning" / name).read_text().split("\ntrainer:")[0]
    command = next(line.strip("# ").strip() for line in header.splitlines() if line.startswith("#   lightning-slt fit"))
    assert command.split()[1:] == [str(Path(a).relative_to(REPO_ROOT)) if "/" in a else a
                                   for a in _recipe(name)], "the test checks the header's own command"
    trainer = cli.parse_config(_recipe(name)).fit.trainer
    budgets = [c.init_args.minutes for c in trainer.callbacks if c.class_path.endswith("TrainTimeBudget")]
    assert budgets == [60, None]  # the base's, then the recipe's, which is the one that acts
    assert trainer.max_steps == 6000 and trainer.max_time is None
    gmp = next(c.init_args for c in trainer.callbacks if c.class_path.endswith("GradualMagnitudePruning"))
    end_step = gmp.get("end_step") or round(0.8 * trainer.max_steps)
    best = [c.init_args for c in trainer.callbacks if c.class_path.endswith("BestAfterStep")]
    assert len(best) == 1 and best[0].after_step == end_step == 4800 and best[0].monitor == "val/bleu"
    assert trainer.callbacks[-1].class_path.endswith("BestAfterStep")  # so --trainer.callbacks.after_step moves it


@pytest.mark.slow
def test_gradual_mp_recipe_command_runs_to_its_ramp_end_at_tiny_sizes(tmp_path, data_root, monkeypatch):
    """The header's command with tiny sizes and a 10-step run (ramp end 8): no budget stops it, the
    final sparsity is reached, and the restricted best checkpoint comes from step 8 or later."""
    monkeypatch.chdir(tmp_path)  # the base config logs to ./runs
    overrides = [
        "--trainer.max_steps=10", "--trainer.val_check_interval=5", "--trainer.callbacks.after_step=8",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--model.d_model=16", "--model.n_heads=2", "--model.encoder_layers=1", "--model.decoder_layers=1",
        "--model.d_ff=32", "--model.max_len_b=3", "--model.warmup_steps=2", "--model.max_positions=64",
        f"--data.data_root={data_root}", f"--data.cache_dir={tmp_path / 'spm'}", "--data.vocab_size=200",
        "--data.train_subset=96", "--data.valid_subset=8", "--data.test_subset=8", "--data.max_len=40",
        "--data.max_tokens=160", "--data.eval_max_tokens=512",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = cli.run_lightning_cli(_recipe("gradual_mp.yaml", *overrides))
    trainer = run.trainer
    assert not [str(w.message) for w in caught if "GradualMagnitudePruning:" in str(w.message)]
    budgets = [cb for cb in trainer.callbacks if isinstance(cb, TrainTimeBudget)]
    assert [(b.minutes, b.active) for b in budgets] == [(60, False), (None, True)]
    gmp = next(cb for cb in trainer.callbacks if isinstance(cb, GradualMagnitudePruning))
    assert trainer.global_step == 10 and gmp.state_dict() == {"last_pruned_step": 8, "sparsity": 0.9}
    best = next(cb for cb in trainer.callbacks if isinstance(cb, BestAfterStep))
    assert best.after_step == 8 and Path(best.best_model_path).name.startswith("best-final-step10-")


def test_the_acting_budget_keeps_its_clocks_across_a_resume(clock, tmp_path):
    """Saved under Lightning's usual key, so checkpoints of earlier versions resume their budget too."""
    first = make_trainer(5, [clock, TrainTimeBudget(minutes=1)])
    first.fit(TinyModule())
    first.save_checkpoint(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"]
    assert saved["TrainTimeBudget"]["train_s"] == pytest.approx(5.0)
    replaced, acting = TrainTimeBudget(minutes=1), TrainTimeBudget(minutes=2)  # a later config's budget
    make_trainer(8, [clock, replaced, acting]).fit(TinyModule(), ckpt_path=tmp_path / "last.ckpt")
    assert acting.train_minutes * 60 == pytest.approx(8.0) and replaced.train_minutes == 0.0
