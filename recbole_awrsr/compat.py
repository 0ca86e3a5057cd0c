"""The three fixes RecBole 1.2.1 needs on today's stack, kept in one place.

1. Checkpoints: torch >= 2.6 loads with ``weights_only=True`` and cannot read the
   pickled ``Config`` inside RecBole's checkpoints. :func:`load_checkpoint` and
   :func:`trusted_checkpoint_loading` read our own checkpoint files with the full
   unpickler; :mod:`recbole_awrsr.trainer` applies them to every trainer class.
2. Anomaly detection: importing RecBole's SINE switches
   ``torch.autograd.set_detect_anomaly(True)`` on for the whole process (a large share
   of each training step; see the field notes). :func:`disable_anomaly_detection` runs when
   ``recbole_awrsr.model`` is imported and after every model lookup.
3. Negative sampling: RecBole samples one negative by default and then refuses
   ``loss_type: CE`` for sequential models. ``NEG_SAMPLING_BY_LOSS``
   gives the default for each loss; the plugin ``Config`` applies it.
"""

import contextlib
import functools
import os

import torch

from recbole_awrsr.errors import CheckpointError


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint file written by RecBole or this plugin (a pickled dict).

    A missing file, one torch cannot read (truncated, text, not a pickle) and one that
    holds no ``config`` and ``state_dict`` (a bare state dict) raise
    :class:`~recbole_awrsr.errors.CheckpointError` naming the file and why.
    An unpickled ``Config`` skips its constructor, which is where RecBole restores
    the numpy aliases (``np.float`` ...) its evaluator still uses; restore them here,
    or a fresh process that only reloads a checkpoint fails at evaluation.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint file '{path}'")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch fails in many ways on a file that is not its own
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"'{path}' is not a recbole-awrsr/RecBole checkpoint: torch "
                              f"cannot read it ({type(error).__name__}: {reason[:120]})") from None
    if not isinstance(checkpoint, dict) or not {"config", "state_dict"} <= set(checkpoint):
        what = ("a state dict without the config" if isinstance(checkpoint, dict)
                else f"a {type(checkpoint).__name__}")
        raise CheckpointError(f"'{path}' is not a recbole-awrsr/RecBole checkpoint: it holds "
                              f"{what}, not the trainer's dict with 'config' and 'state_dict'")
    config = checkpoint.get("config")
    if hasattr(config, "compatibility_settings"):
        config.compatibility_settings()
    return checkpoint


@contextlib.contextmanager
def trusted_checkpoint_loading():
    """Within the block, ``torch.load`` unpickles fully unless told otherwise.

    Used only around RecBole's own checkpoint readers (``Trainer.evaluate`` and
    ``Trainer.resume_checkpoint``), which read files the trainer itself wrote.
    """
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def disable_anomaly_detection():
    """Undo the process-wide anomaly detection switched on by ``recbole...sine``."""
    torch.autograd.set_detect_anomaly(False)


# Training negatives each loss needs when the user did not choose: CE scores all
# items and needs none, BPR needs one sampled negative per target.
NEG_SAMPLING_BY_LOSS = {
    "CE": None,
    "BPR": {"distribution": "uniform", "sample_num": 1},
}
