"""Trainers: RecBole's, with checkpoint loading that works on torch >= 2.6 and a time budget."""

import functools
import time

from recbole.trainer import Trainer

from recbole_awrsr.compat import trusted_checkpoint_loading


class TimeBudgetExhausted(Exception):
    """Raised between epochs once ``train_time_budget`` seconds of training have passed."""


class PluginTrainerMixin:
    """Applied to every trainer class the plugin hands out (ours and RecBole's).

    * Lets RecBole's trainer read back the checkpoints it wrote itself: they hold
      the pickled ``Config``, which torch >= 2.6 refuses to unpickle by default, so
      every ``saved=True`` run used to die at test time.
    * ``train_time_budget`` (seconds, default none): no new epoch starts after it;
      the best checkpoint so far is kept and tested, as after early stopping. It
      lets different models be compared at the same wall-clock.
    """

    def fit(self, train_data, valid_data=None, *args, **kwargs):
        self._fit_started = time.monotonic()
        try:
            return super().fit(train_data, valid_data, *args, **kwargs)
        except TimeBudgetExhausted as stop:
            self.logger.info(str(stop))
            return self.best_valid_score, getattr(self, "best_valid_result", None)

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        budget = self.config["train_time_budget"]
        started = getattr(self, "_fit_started", None)
        if budget is not None and started is not None and epoch_idx > self.start_epoch:
            elapsed = time.monotonic() - started
            if elapsed >= budget:
                raise TimeBudgetExhausted(
                    f"train_time_budget of {budget}s used up after {epoch_idx} epochs "
                    f"({elapsed:.0f}s): stopping, the best epoch so far is kept."
                )
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().evaluate(*args, **kwargs)

    def resume_checkpoint(self, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().resume_checkpoint(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def with_plugin_fixes(trainer_class):
    """``trainer_class`` with :class:`PluginTrainerMixin` in front (same name), cached."""
    if issubclass(trainer_class, PluginTrainerMixin):
        return trainer_class
    return type(trainer_class.__name__, (PluginTrainerMixin, trainer_class), {})


class AWRTrainer(PluginTrainerMixin, Trainer):
    """The trainer of the plugin's models."""
