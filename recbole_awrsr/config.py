"""The plugin's ``Config``: RecBole's, with our ``properties/`` overlaid after RecBole's."""

import ast
import difflib
import functools
import logging
import numbers
from pathlib import Path

import recbole
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_awrsr.compat import NEG_SAMPLING_BY_LOSS
from recbole_awrsr.distributed import init_distributed
from recbole_awrsr.errors import DATASET_NAME_RULE, ConfigurationError, is_dataset_name, is_number
from recbole_awrsr.registry import get_model


def properties_dir():
    """Folder of the plugin's YAML files.

    Installed, it is the package ``recbole_awrsr/properties``; in a source checkout
    (editable install, or running from the repository) it is the top-level ``properties/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "properties", here.parent / "properties"):
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"recbole_awrsr's properties/overall.yaml was found neither in {here / 'properties'} "
        f"nor in {here.parent / 'properties'}: reinstall the package (pip install .)."
    )


#: RecBole's sequential models that read item features (RecBole picks their ml-100k
#: settings by model name)
RECBOLE_FEATURE_MODELS = ("GRU4RecF", "SASRecF", "FDSA", "S3Rec")


def recbole_properties_dir():
    """Folder of RecBole's own YAML files (``overall.yaml``, ``model/``, ``dataset/``)."""
    return Path(recbole.__file__).resolve().parent / "properties"


def model_yaml_chain(model_class):
    """The model YAML files a model's config reads after RecBole's, base class first.

    For each class on the model's class chain: RecBole's ``<Class>.yaml`` (for the
    classes the model derives from; RecBole reads the model's own itself) and then
    ours. So ``SASRecAWR`` reads RecBole's ``SASRec.yaml`` and then ``SASRecAWR.yaml``,
    ``STOSAAWR`` reads ``STOSA.yaml`` and then ``STOSAAWR.yaml``: each file states only
    what its class adds.
    """
    ours, theirs = properties_dir() / "model", recbole_properties_dir() / "model"
    files = []
    for cls in reversed(model_class.__mro__):
        candidates = [ours / f"{cls.__name__}.yaml"]
        if cls is not model_class:
            candidates.insert(0, theirs / f"{cls.__name__}.yaml")
        files += [path for path in candidates if path.is_file()]
    return files


class Config(RecBoleConfig):
    """RecBole's ``Config`` that knows the plugin's models and YAML files.

    Layers, later wins: RecBole's overall/model/dataset YAMLs, ours
    (``properties/overall.yaml``, the model YAMLs along the model's class chain, see
    :func:`model_yaml_chain`, ``properties/dataset/<dataset>.yaml``), then
    ``config_file_list``, then ``config_dict``.

    Unlike RecBole's, it does not read ``sys.argv``: pytest's or Ray's flags would
    become config keys. The command line goes through :mod:`recbole_awrsr.cli`,
    which hands it over as ``config_dict``.

    The training negatives default to what the loss needs (none for CE, one
    uniform negative for BPR) unless ``train_neg_sample_args`` is set by the user,
    and a model class may define ``check_config(config)``, called here so that
    configuration mistakes fail before any data is loaded.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except ConfigurationError:
            raise
        except ValueError as error:
            # RecBole's own checks (topk, valid_metric, ...) are configuration mistakes too
            raise ConfigurationError(str(error)) from None
        check_common_config(self)
        warn_unknown_keys(self)
        check = getattr(self.model_class, "check_config", None)
        if check is not None:
            check(self)
        if self["train_targets"] == "all" and not getattr(self.model_class, "handles_all_targets", False):
            raise ConfigurationError(
                f"train_targets: all needs a model that trains on every position; "
                f"{self['model']} trains on the last one only. Drop train_targets, or use one "
                f"of the plugin's models (SASRecAWR, STOSA, STOSAAWR)."
            )

    def _load_cmd_line(self):
        return {}

    def _load_config_files(self, file_list):
        """RecBole's, with a missing, empty or malformed file named in a one-line error."""
        loaded = {}
        for path in file_list or []:
            try:
                with open(path, encoding="utf-8") as handle:
                    values = yaml.load(handle.read(), Loader=self.yaml_loader)
            except OSError as error:
                raise ConfigurationError(f"config file {path}: {error.strerror}") from None
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f", line {mark.line + 1}" if mark is not None else ""
                raise ConfigurationError(
                    f"config file {path}{where}: not valid YAML ({getattr(error, 'problem', error)})"
                ) from None
            if not isinstance(values, dict):
                raise ConfigurationError(
                    f"config file {path}: expected 'key: value' lines, got "
                    f"{'an empty file' if values is None else type(values).__name__}")
            loaded.update(values)
        return loaded

    def _init_device(self):
        # RecBole 1.2.1 always joins a distributed run with the NCCL backend and a CUDA
        # device, so multi-process training is impossible on CPU. Single-process runs are
        # RecBole's; a distributed run (``local_rank`` set) picks the backend from the device.
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        init_distributed(self.final_config_dict)
        return None

    def _convert_config_dict(self, config_dict):
        # RecBole converts strings with eval() inside its own method, so a value
        # that names one of its local variables (e.g. "value") comes back as that
        # variable's content. Literals only, here.
        for key, param in config_dict.items():
            if isinstance(param, str):
                config_dict[key] = _parse_value(param)
        return config_dict

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "No model given: pass model=..., or set 'model' in a config file or config_dict."
                )
        if isinstance(model, str):
            model = get_model(model)
        model, model_class, dataset = super()._get_model_and_dataset(model, dataset)
        if not is_dataset_name(dataset):
            # the name becomes folders and files under data_path and log/: no paths
            raise ConfigurationError(
                f"dataset name {dataset!r} is not a name: use {DATASET_NAME_RULE} "
                f"(the files are read from <data_path>/<name>/<name>.inter)."
            )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        dataset_file = root / "dataset" / f"{dataset}.yaml"
        for path in (root / "overall.yaml", *model_yaml_chain(model_class), dataset_file):
            if not path.is_file():
                continue
            loaded = self._update_internal_config_dict(str(path)) or {}
            if path == dataset_file:
                # Dataset keys decide RecBole's dataset cache; register ours as such.
                self.parameters["Dataset"] += [
                    key for key in loaded if key not in self.parameters["Dataset"]
                ]
        # RecBole loads ml-100k's item features for its feature models by model name, and
        # our overall.yaml's load_col (ids and time) came after: give them back, also to a
        # model derived from one (SASRecFAWR, FDSAAWR)
        chain = {cls.__name__ for cls in model_class.__mro__}
        if dataset == "ml-100k" and chain & set(RECBOLE_FEATURE_MODELS):
            self._update_internal_config_dict(
                str(recbole_properties_dir() / "quick_start_config" / "special_sequential_on_ml-100k.yaml"))

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        loss_type = final.get("loss_type")
        if "train_neg_sample_args" not in self.external_config_dict and loss_type in NEG_SAMPLING_BY_LOSS:
            negatives = NEG_SAMPLING_BY_LOSS[loss_type]
            final["train_neg_sample_args"] = dict(negatives) if negatives else None
        return final


#: keys the run reads that no YAML file states (distributed runs; set by the launcher)
RUNTIME_KEYS = {"nproc", "local_rank", "single_spec", "world_size", "ip", "port", "offset",
                "dist_backend", "device"}


@functools.lru_cache(maxsize=None)
def yaml_keys():
    """Every key any YAML file of RecBole's or ours states (any model, dataset or setting)."""
    keys = set()
    for root in (recbole_properties_dir(), properties_dir()):
        for path in root.rglob("*.yaml"):
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError:
                continue
            if isinstance(loaded, dict):
                keys.update(loaded)
    return frozenset(keys)


def warn_unknown_keys(config):
    """Log one warning per key the user set that nothing knows, with the closest known key.

    Known: RecBole's parameter lists, every key of every YAML file (RecBole's and ours,
    for any model) and the distributed-run keys. A misspelt key would otherwise be
    ignored silently and the run train with the default.
    """
    known = set(yaml_keys()) | RUNTIME_KEYS | set(config.internal_config_dict)
    for names in config.parameters.values():
        known.update(names)
    for key in config.external_config_dict:
        if key in known or key in ("model", "dataset"):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        logging.getLogger("recbole_awrsr").warning(
            f"unknown config key '{key}' (no model or setting reads it){hint}")


#: keys that must be whole numbers of at least this much, when a model uses them
MINIMUM_INTEGERS = {"MAX_ITEM_LIST_LENGTH": 1, "train_batch_size": 1, "eval_batch_size": 1,
                    "epochs": 1, "n_heads": 1, "n_layers": 1, "hidden_size": 1}


def check_common_config(config):
    """Raise ConfigurationError, with the fix, for values no model can train with.

    Checked before any data is read: sizes and counts that must be positive whole
    numbers, a positive learning rate, ``topk`` cut-offs, and ``n_heads`` dividing
    ``hidden_size`` (the heads split the hidden vector).
    """
    for key, minimum in MINIMUM_INTEGERS.items():
        value = config[key]
        if value is not None and (not is_number(value) or value < minimum):
            raise ConfigurationError(f"{key} must be a whole number of at least {minimum}, got {value!r}.")
    rate = config["learning_rate"]
    if not is_number(rate, numbers.Real) or not rate > 0:
        raise ConfigurationError(f"learning_rate must be a number above 0, got {rate!r}.")
    topk = config["topk"]
    topk = [topk] if is_number(topk) else topk
    if not isinstance(topk, (list, tuple)) or not topk or not all(is_number(k) and k >= 1 for k in topk):
        raise ConfigurationError(f"topk must be whole numbers of at least 1, e.g. [1, 5, 10]; got {topk!r}.")
    heads, hidden = config["n_heads"], config["hidden_size"]
    if heads is not None and hidden is not None and hidden % heads:
        raise ConfigurationError(
            f"hidden_size ({hidden}) must be a multiple of n_heads ({heads}): each head takes "
            f"hidden_size / n_heads of the hidden vector.")


def _parse_value(text):
    """A command-line or config_dict string as the Python literal it spells, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
