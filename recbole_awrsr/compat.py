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
5. numpy 2 removed names RecBole reads (``np.float_`` in ``Config``, ``np.float`` in its
   evaluator and data code): :func:`restore_numpy_aliases` puts them back when this
   module is imported, before anything imports RecBole.
6. pandas 3 (copy-on-write) ignores the chained ``feat[field].fillna(..., inplace=True)``
   with which RecBole fills missing token and float values, so NaNs stayed:
   :func:`fill_nan_by_assignment` fills those columns first (:func:`patch_recbole`).
7. RecBole 1.2.1 is installed with ``--no-deps`` (its metadata pins ``ray<=2.6.3``, which
   has no wheel past Python 3.11): :func:`require_recbole` says so when it is missing.
"""

import enum
import importlib
import os
import warnings

import numpy as np
import pandas as pd

#: names numpy 2 removed that RecBole 1.2.1 still reads, with what they stood for; the
#: values are those RecBole's own ``Config.compatibility_settings`` assigns
#: (configurator.py:628-635), which itself first reads ``np.float_``, ``np.complex_``
#: and ``np.unicode_``
NUMPY_ALIASES = {
    "float_": "float64", "complex_": "complex128", "unicode_": "str_",
    "bool": "bool_", "int": "int_", "float": "float64", "complex": "complex128",
    "object": "object_", "str": "str_", "long": "int_", "unicode": "str_",
}


def restore_numpy_aliases():
    """Give numpy back the removed names RecBole reads (:data:`NUMPY_ALIASES`).

    Only names numpy lacks are set (a removed name is absent from the module's
    namespace: numpy answers it through ``__getattr__`` with an error).
    """
    for name, target in NUMPY_ALIASES.items():
        if name not in vars(np):
            setattr(np, name, getattr(np, target))


# before RecBole is imported: its modules read some of these at import and at run time
restore_numpy_aliases()

import torch  # noqa: E402
import yaml  # noqa: E402


try:
    import recbole  # noqa: E402
except ImportError:  # reported, with the command that installs it, by require_recbole
    recbole = None


def require_recbole(module, version="1.2.1"):
    """Fail with the install command when RecBole (``module``, None if absent) is missing
    or another release than ``version``."""
    command = f"pip install --no-deps recbole=={version}"
    if module is None:
        raise ImportError(f"recbole-awrsr needs RecBole {version}, installed without its "
                          f"dependencies (its metadata pins ray<=2.6.3): {command}")
    if module.__version__ != version:
        raise ImportError(f"recbole-awrsr needs RecBole {version}, found {module.__version__}: {command}")


require_recbole(recbole)

from recbole.config import Config as RecBoleConfig  # noqa: E402
from recbole.data.dataset import Dataset as RecBoleDataset  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.model.abstract_recommender import AbstractRecommender  # noqa: E402
from recbole.utils import FeatureType, enum_type  # noqa: E402

from recbole_awrsr.errors import CheckpointError  # noqa: E402


#: classes and functions a RecBole/plugin checkpoint needs besides tensors and containers:
#: the pickled Config and what it holds (RecBole's enums, numpy dtypes and scalars, the
#: YAML loader class); the model class it names is allowed separately (any recommender
#: of RecBole's or the plugin's model packages)
def _checkpoint_objects():
    # numpy 2 moved numpy.core to numpy._core (the old name warns; numpy 1.26 has an
    # empty numpy._core): a pickle names the one of the numpy that wrote it
    core = np._core if int(np.__version__.split(".")[0]) >= 2 else np.core
    objects = [RecBoleConfig, np.dtype, core.multiarray.scalar, yaml.loader.FullLoader]
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


#: (message regex, category, module regex) of warnings RecBole's own code raises that a
#: user cannot act on: torch's GradScaler deprecation (RecBole's trainer); pandas'
#: chained-assignment notice (RecBole's ``fillna(inplace=True)`` on dataset columns: a
#: FutureWarning before pandas 3, a ChainedAssignmentError warning after; the token and
#: float columns are filled by :func:`patch_recbole` anyway); pandas 3's deprecation of
#: ``inplace=`` (RecBole's dataset calls ``drop``/``reset_index``... with it); torch's
#: notice that a NumPy array is read-only (pandas 3 hands out read-only column arrays,
#: which ``Dataset._dataframe_to_interaction`` turns into tensors that nothing writes to)
RECBOLE_WARNINGS = (
    (r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated", FutureWarning, r"recbole\.trainer"),
    (r"A value is (trying to be|being) set on a copy of a DataFrame or Series through chained "
     r"assignment",
     Warning, r"recbole\.data"),
    (r"The inplace keyword in \S+ is deprecated", DeprecationWarning, r"recbole\.data"),
    (r"The given NumPy array is not writable", UserWarning, r"recbole\.data"),
)

#: numpy 2's deprecation of ``__array_wrap__`` without ``return_scalar``, raised inside
#: numpy (so no module filter can name RecBole) when RecBole's ``Interaction.sort``
#: (recbole/data/interaction.py:347) hands a torch tensor to ``np.argsort``
ARRAY_WRAP_WARNING = r"__array_wrap__ must accept context and return_scalar"


def silence_recbole_warnings():
    """Hide exactly :data:`RECBOLE_WARNINGS`, only where RecBole's modules raise them."""
    for message, category, module in RECBOLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def fill_nan_by_assignment(dataset):
    """Fill missing token (with 0) and float (with the column mean) values of every feature table.

    What RecBole's ``Dataset._fill_nan`` means to do for these two types; it does it with
    ``feat[field].fillna(..., inplace=True)`` (recbole/data/dataset/dataset.py:648 and 650),
    a chained call that fills a temporary copy under pandas 3, so the NaNs stayed. Assigning
    the filled column back works under every pandas.
    """
    for feat_name in dataset.feat_name_list:
        feat = getattr(dataset, feat_name)
        for field in feat:
            ftype = dataset.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())


def remap_tokens(dataset, remap_list):
    """Number the tokens of fields that share one id space 1, 2, ... (0 is ``[PAD]``).

    Replaces RecBole's ``Dataset._remap`` (recbole/data/dataset/dataset.py:1196-1218), which
    reads each token sequence's length with ``feat[field].agg(len)``: pandas 3 applies
    ``agg`` to the whole column (one length), and putting the ids back into the rows of a
    ``token_seq`` field fails. The numbering is RecBole's: ``pd.factorize`` over the tokens
    of all fields in ``remap_list`` order, the first field setting ``field2id_token`` and
    ``field2token_id`` for fields that have none.
    """
    if not remap_list:
        return
    flat = []
    for feat, field, ftype in remap_list:
        if ftype == FeatureType.TOKEN_SEQ:
            flat.append(np.concatenate([np.asarray(row) for row in feat[field]] or [np.array([])]))
        else:
            flat.append(np.asarray(feat[field]))
    ids, uniques = pd.factorize(np.concatenate(flat))
    id_token = np.array(["[PAD]"] + list(uniques))
    token_id = {token: index for index, token in enumerate(id_token)}
    ids = np.split(ids + 1, np.cumsum([len(part) for part in flat])[:-1])
    for (feat, field, ftype), field_ids in zip(remap_list, ids):
        if field not in dataset.field2id_token:
            dataset.field2id_token[field] = id_token
            dataset.field2token_id[field] = token_id
        if ftype == FeatureType.TOKEN:
            feat[field] = field_ids
        elif ftype == FeatureType.TOKEN_SEQ:
            lengths = [len(row) for row in feat[field]]
            feat[field] = np.split(field_ids, np.cumsum(lengths)[:-1])


def patch_recbole():
    """Apply the fixes that must live inside RecBole's classes (once; idempotent).

    ``Dataset._fill_nan`` first fills token and float columns itself
    (:func:`fill_nan_by_assignment`), then runs RecBole's method, which still handles
    the sequence fields and now finds nothing left to fill in the others.
    ``Interaction.sort`` runs with :data:`ARRAY_WRAP_WARNING` hidden, and only it.
    ``Dataset._remap`` is :func:`remap_tokens`.
    """
    fill_nan = RecBoleDataset._fill_nan
    if getattr(fill_nan, "_awrsr_patched", False):
        return

    def _fill_nan(self):
        fill_nan_by_assignment(self)
        fill_nan(self)

    sort = Interaction.sort

    def _sort(self, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=ARRAY_WRAP_WARNING, category=DeprecationWarning)
            return sort(self, *args, **kwargs)

    for patched, original in ((_fill_nan, fill_nan), (_sort, sort)):
        patched._awrsr_patched = True
        patched.__doc__ = original.__doc__
    RecBoleDataset._fill_nan = _fill_nan
    Interaction.sort = _sort
    RecBoleDataset._remap = remap_tokens


patch_recbole()


def disable_anomaly_detection():
    """Undo the process-wide anomaly detection switched on by ``recbole...sine``."""
    torch.autograd.set_detect_anomaly(False)


# Training negatives each loss needs when the user did not choose: CE scores all
# items and needs none, BPR needs one sampled negative per target.
NEG_SAMPLING_BY_LOSS = {
    "CE": None,
    "BPR": {"distribution": "uniform", "sample_num": 1},
}
