"""Trainers: RecBole's, with checkpoint loading that works on torch >= 2.6."""

import functools

from recbole.trainer import Trainer

from recbole_awrsr.compat import trusted_checkpoint_loading


class CheckpointLoadingMixin:
    """Lets RecBole's trainer read back the checkpoints it wrote itself.

    RecBole's checkpoints hold the pickled ``Config``; torch >= 2.6 refuses to
    unpickle it by default, so every ``saved=True`` run used to die at test time.
    """

    def evaluate(self, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().evaluate(*args, **kwargs)

    def resume_checkpoint(self, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().resume_checkpoint(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def with_checkpoint_fix(trainer_class):
    """``trainer_class`` with :class:`CheckpointLoadingMixin` in front (same name)."""
    if issubclass(trainer_class, CheckpointLoadingMixin):
        return trainer_class
    return type(trainer_class.__name__, (CheckpointLoadingMixin, trainer_class), {})


class AWRTrainer(CheckpointLoadingMixin, Trainer):
    """The trainer of the plugin's models."""

