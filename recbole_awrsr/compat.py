"""The fixes RecBole 1.2.1 needs on today's stack, kept in one place.

1. Checkpoints: torch >= 2.6 loads with ``weights_only=True`` and cannot read the
   pickled ``Config`` inside RecBole's checkpoints. :func:`load_checkpoint` reads them
   with the weights-only loader and an allow-list of exactly what a checkpoint holds
   (never code); :mod:`recbole_awrsr.trainer` writes checkpoints it can read and loads
   them through it.
2. Anomaly detection: importing RecBole's SINE switches
   ``torch.autograd.set_detect_anomaly(True)`` on for the whole process (a large share
   of each training step; see the field notes). :func:`disable_anomaly_detection` runs when
   ``recbole_awrsr.model`` is imported and after every model lookup.
3. Warnings from RecBole's internals that a user cannot act on are hidden where RecBole
   raises them (:func:`silence_recbole_warnings`, at package import); ours never are.
4. Negative sampling: RecBole samples one negative by default and then refuses
   ``loss_type: CE`` for sequential models. ``NEG_SAMPLING_BY_LOSS``
   gives the default for each loss; the plugin ``Config`` applies it.
"""

import enum
import importlib
import os
import warnings

import numpy as np
import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import enum_type

from recbole_awrsr.errors import CheckpointError


#: classes and functions a RecBole/plugin checkpoint needs besides tensors and containers:
#: the pickled Config and what it holds (RecBole's enums, numpy dtypes and scalars, the
#: YAML loader class); the model class it names is allowed separately (any recommender
#: of RecBole's or the plugin's model packages)
def _checkpoint_objects():
    objects = [RecBoleConfig, np.dtype, np.core.multiarray.scalar, yaml.loader.FullLoader]
    objects += [getattr(enum_type, name) for name in dir(enum_type)
                if isinstance(getattr(enum_type, name), type)
                and issubclass(getattr(enum_type, name), enum.Enum)]
    objects += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGUO"]
    return objects


#: the packages whose recommender classes a checkpoint may name as its model
MODEL_PACKAGES = ("recbole.model.", "recbole_awrsr.model.")


def _qualified(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def checkpoint_globals(path):
    """What the weights-only unpickler may build for ``path``, or CheckpointError.

    Everything the file names must be in :func:`_checkpoint_objects`, a Config class,
    or a recommender class of :data:`MODEL_PACKAGES` (imported to check it); anything
    else (a function that runs a command, say) refuses the file.
    """
    objects = _checkpoint_objects()
    known = {_qualified(obj): obj for obj in objects}
    allowed = list(objects)  # numpy's dtype classes are built without being named
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(path):
        if name in known:
            continue
        module, _, attribute = name.rpartition(".")
        found = None
        if name.startswith(MODEL_PACKAGES) or name.endswith(".Config"):
            found = getattr(importlib.import_module(module), attribute, None)
        if isinstance(found, type) and issubclass(found, (AbstractRecommender, RecBoleConfig)):
            allowed.append(found)
            continue
        raise CheckpointError(
            f"'{path}' holds '{name}', which no recbole-awrsr/RecBole checkpoint needs: not "
            f"unpickling it (it could run code). If you trust the file, load it with "
            f"trusted=True (command line: --trust-checkpoint).")
    return allowed


def load_checkpoint(path, map_location="cpu", trusted=False):
    """Load a checkpoint file written by RecBole or this plugin (a pickled dict), safely.

    The file is unpickled with torch's weights-only loader, which builds nothing but
    tensors, containers and the classes :func:`checkpoint_globals` allows, so a crafted
    file cannot run code. ``trusted=True`` unpickles fully instead (with a warning): for
    files from RecBole's own trainer, which writes a pickle protocol the weights-only
    loader cannot read (the plugin's trainer writes one it can).

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
        if trusted:
            warnings.warn(f"unpickling '{path}' fully (trusted=True): only do this with files "
                          f"you trust", UserWarning, stacklevel=2)
            checkpoint = torch.load(path, map_location=map_location, weights_only=False)
        else:
            with torch.serialization.safe_globals(checkpoint_globals(path)):
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except Exception as error:  # torch fails in many ways on a file that is not its own
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Unsupported operand" in str(error):
            raise CheckpointError(
                f"'{path}' was written with a pickle protocol the safe loader cannot read "
                f"(RecBole's own trainer writes one): if you trust the file, load it with "
                f"trusted=True (command line: --trust-checkpoint)") from None
        if "Weights only load failed" in str(error):
            detail = [line for line in str(error).splitlines() if "allowlisted" in line or "GLOBAL" in line]
            raise CheckpointError(
                f"'{path}' holds objects the safe loader does not build "
                f"({(detail or [reason])[0].strip()[:160]}): if you trust the file, load it with "
                f"trusted=True (command line: --trust-checkpoint)") from None
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


#: (message regex, module regex) of warnings RecBole's own code raises that a user cannot act
#: on: torch's GradScaler deprecation (RecBole's trainer), pandas' chained-assignment
#: notice (RecBole's fillna on dataset columns, which still fills under pandas < 3)
RECBOLE_WARNINGS = (
    (r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated", r"recbole\.trainer"),
    (r"A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
     r"recbole\.data"),
)


def silence_recbole_warnings():
    """Hide exactly :data:`RECBOLE_WARNINGS`, only where RecBole's modules raise them."""
    for message, module in RECBOLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning, module=module)


def disable_anomaly_detection():
    """Undo the process-wide anomaly detection switched on by ``recbole...sine``."""
    torch.autograd.set_detect_anomaly(False)


# Training negatives each loss needs when the user did not choose: CE scores all
# items and needs none, BPR needs one sampled negative per target.
NEG_SAMPLING_BY_LOSS = {
    "CE": None,
    "BPR": {"distribution": "uniform", "sample_num": 1},
}
