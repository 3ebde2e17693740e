"""StepProgressBar: a run bounded by steps reads "Epoch 0", not Lightning's "Epoch 0/-2"; a run
bounded by epochs reads as before; use_step_progress_bar swaps only Lightning's default bar."""

import io

import pytest
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import RichProgressBarTheme

from lightning_slt.callbacks.progress_bar import StepProgressBar, use_step_progress_bar

from .tiny import fresh_module, make_trainer

pytest.importorskip("rich")


def _printed(bar_class, **trainer_args) -> str:
    out = io.StringIO()
    bar = bar_class(console_kwargs={"file": out, "force_terminal": True, "width": 120, "color_system": None})
    make_trainer(callbacks=[bar], enable_progress_bar=True, **trainer_args).fit(fresh_module(0))
    return out.getvalue()


def test_lightnings_bar_reads_epoch_minus_two_in_a_run_bounded_by_steps():
    assert "Epoch 0/-2" in _printed(RichProgressBar, max_steps=3)  # what the demo's first run showed


def test_a_run_bounded_by_steps_reads_its_epoch_alone():
    printed = _printed(StepProgressBar, max_steps=3)
    assert "Epoch 0 " in printed and "/-" not in printed, printed[-500:]


def test_a_run_bounded_by_epochs_still_reads_epoch_of_last():
    assert "Epoch 1/1" in _printed(StepProgressBar, max_steps=-1, max_epochs=2)


def test_use_step_progress_bar_replaces_the_default_bar_with_its_settings():
    theme = RichProgressBarTheme(description="red")
    trainer = make_trainer(3, [RichProgressBar(refresh_rate=7, leave=True, theme=theme, console_kwargs={"width": 99})],
                           enable_progress_bar=True)
    use_step_progress_bar(trainer)
    bar = trainer.progress_bar_callback
    assert type(bar) is StepProgressBar and bar.refresh_rate == 7 and bar._leave and bar.theme is theme
    assert bar._console_kwargs == {"width": 99}
    assert sum(isinstance(c, RichProgressBar) for c in trainer.callbacks) == 1
    default = make_trainer(3, [], enable_progress_bar=True)  # Lightning's own default bar
    use_step_progress_bar(default)
    assert type(default.progress_bar_callback) is StepProgressBar


def test_use_step_progress_bar_leaves_other_bars_and_no_bar_alone():
    tqdm = TQDMProgressBar()
    trainer = make_trainer(3, [tqdm], enable_progress_bar=True)
    use_step_progress_bar(trainer)
    assert trainer.progress_bar_callback is tqdm
    quiet = make_trainer(3, [])  # enable_progress_bar=False
    use_step_progress_bar(quiet)
    assert quiet.progress_bar_callback is None
