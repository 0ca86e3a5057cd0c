"""Name lookups that see the plugin first and fall back to RecBole.

RecBole's own ``get_model``, ``get_trainer`` and ``create_dataset`` only search
RecBole's modules; these three are the plugin's replacements, so a name such as
``SASRecAWR`` and a RecBole baseline such as ``GRU4Rec`` go through the same door.
"""

import importlib
import os

from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_awrsr import model as our_models
from recbole_awrsr import trainer as ours
from recbole_awrsr.compat import disable_anomaly_detection
from recbole_awrsr.data.dataset import dataset_class
from recbole_awrsr.errors import ConfigurationError, MissingDatasetError


def get_model(model_name):
    """Return the model class called ``model_name``: ours first, then RecBole's."""
    ours = importlib.import_module("recbole_awrsr.model")
    model_class = getattr(ours, model_name, None)
    if model_class is None:
        try:
            model_class = recbole_get_model(model_name)
        except (ValueError, ImportError) as error:
            # RecBole's search imports its optional-library models (lightgbm, xgboost)
            # on the way, so an unknown name can also surface as an ImportError
            raise ConfigurationError(
                f"Unknown model '{model_name}': it is neither a recbole_awrsr model "
                f"({', '.join(ours.__all__)}) nor a RecBole model. Check the spelling "
                f"(names are case-sensitive, e.g. SASRec, GRU4Rec, BERT4Rec). "
                f"(RecBole's lookup said: {error})"
            ) from None
    # Resolving RecBole's sequential models imports SINE, which switches anomaly
    # detection on for the whole process; switch it off again, for baselines too.
    disable_anomaly_detection()
    return model_class


def get_trainer(model_type, model_name):
    """Return the trainer class for a model, with the plugin's fixes (see :mod:`recbole_awrsr.trainer`)."""
    trainer_class = getattr(ours, model_name + "Trainer", None)
    if trainer_class is None and model_name in our_models.__all__:
        trainer_class = ours.AWRTrainer
    if trainer_class is None:
        trainer_class = recbole_get_trainer(model_type, model_name)
    return ours.with_plugin_fixes(trainer_class)


def atomic_inter_file(config):
    """Path of the ``.inter`` atomic file a config points at."""
    return os.path.join(config["data_path"], f"{config['dataset']}.inter")


def check_atomic_files(config):
    """Fail with the converter command when a dataset's ``.inter`` file is missing.

    RecBole would otherwise try to download the dataset, which fails without network.
    """
    path = atomic_inter_file(config)
    if os.path.isfile(path):
        return
    name = config["dataset"]
    raise MissingDatasetError(
        f"Dataset '{name}' has no atomic files: expected {path}. "
        f"Convert the raw files first, e.g. "
        f"`python -m recbole_awrsr.data convert {name} RAW_FILE --output-dir "
        f"{os.path.dirname(os.path.normpath(config['data_path'])) or '.'}` "
        f"(see dataset_atomic/README.md), or set data_path to the folder that holds "
        f"{name}/{name}.inter."
    )


def create_dataset(config):
    """Build the dataset for ``config``: a plugin dataset class where the model asks for one.

    The plugin class is chosen by :func:`recbole_awrsr.data.dataset.dataset_class`;
    everything else is RecBole's ``create_dataset``.
    """
    check_atomic_files(config)

    cls = dataset_class(config)
    if cls is None:
        return recbole_create_dataset(config)
    return cls(config)
