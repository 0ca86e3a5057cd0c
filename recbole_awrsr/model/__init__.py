"""The plugin's models; any other name falls back to RecBole's."""

from recbole_awrsr.model.sasrec_awr import SASRecAWR

__all__ = ["SASRecAWR"]
