"""The progress bar of a run bounded by steps: "Epoch 3", not Lightning's "Epoch 3/-2".

Why: a run configured by ``max_steps`` alone (every shipped config, the demo's runs) gets
``max_epochs=-1`` from the Trainer, meaning "no epoch limit", and Lightning's
``RichProgressBar`` (its default bar where ``rich`` is installed) prints ``max_epochs - 1`` as the
last epoch: "Epoch 0/-2". ``StepProgressBar`` says only the epoch when epochs are unbounded, as
``TQDMProgressBar`` does, and is otherwise the same bar. ``use_step_progress_bar`` puts it in a
built Trainer in place of the default one, keeping that one's settings.
"""

from __future__ import annotations

from typing_extensions import override

from lightning_slt._lightning import RichProgressBar, pl


class StepProgressBar(RichProgressBar):
    """``RichProgressBar`` whose training description omits the last epoch when there is none
    (``max_epochs`` -1 or None: the run ends at ``max_steps`` or ``max_time``)."""

    @override
    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs >= 0:
            return super()._get_train_description(current_epoch)  # "Epoch 3/9"
        # Lightning pads to the validation description's length, so the bar does not flicker
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"


def use_step_progress_bar(trainer: pl.Trainer) -> None:
    """Replace the trainer's ``RichProgressBar`` (Lightning's default bar) by a ``StepProgressBar``
    with the same refresh rate, ``leave``, theme and console arguments; other bars stay."""
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is RichProgressBar:
            trainer.callbacks[i] = StepProgressBar(refresh_rate=callback.refresh_rate, leave=callback._leave,
                                                   theme=callback.theme, console_kwargs=callback._console_kwargs)
