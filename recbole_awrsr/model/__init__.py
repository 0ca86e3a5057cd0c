"""The plugin's models; any other name falls back to RecBole's."""

from recbole_awrsr.model.sasrec_awr import SASRecAWR
from recbole_awrsr.model.stosa import STOSA, STOSAAWR

__all__ = ["SASRecAWR", "STOSA", "STOSAAWR"]
