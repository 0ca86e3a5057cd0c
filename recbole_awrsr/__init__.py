"""recbole-awrsr: attention weight refinement for RecBole's sequential recommenders."""

from recbole_awrsr.denormals import flush_denormals

flush_denormals()  # before anything starts PyTorch's thread pool: see denormals.py

from recbole_awrsr.compat import silence_recbole_warnings

silence_recbole_warnings()

from recbole_awrsr.config import Config
from recbole_awrsr.quick_start import load_data_and_model, run_recbole_awrsr
from recbole_awrsr.recommend import recommend
from recbole_awrsr.registry import create_dataset, get_model, get_trainer

__all__ = [
    "Config",
    "create_dataset",
    "get_model",
    "get_trainer",
    "load_data_and_model",
    "recommend",
    "run_recbole_awrsr",
]
__version__ = "0.1.0"
