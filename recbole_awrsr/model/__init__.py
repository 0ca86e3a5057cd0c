"""The plugin's models; any other name falls back to RecBole's."""

from recbole_awrsr.model.recbole_refined import (
    BERT4RecAWR,
    COREAWR,
    FDSAAWR,
    GCSANAWR,
    SASRecCPRAWR,
    SASRecFAWR,
)
from recbole_awrsr.model.sasrec_awr import SASRecAWR
from recbole_awrsr.model.stosa import STOSA, STOSAAWR
from recbole_awrsr.compat import disable_anomaly_detection

# importing RecBole's SASRec (above) imports SINE, which switches anomaly detection
# on for the process; a model built by hand must not train slower for it
disable_anomaly_detection()

__all__ = ["SASRecAWR", "STOSA", "STOSAAWR", "BERT4RecAWR", "SASRecFAWR", "FDSAAWR", "COREAWR",
           "GCSANAWR", "SASRecCPRAWR"]


def refined_models():
    """Names of the plugin's models that take a refinement mechanism, in ``__all__`` order."""
    return [name for name in __all__ if getattr(globals()[name], "backbone", None)]
