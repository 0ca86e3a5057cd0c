"""Offline dataset tools: raw files -> RecBole atomic files, the official downloads, statistics.

Nothing here is needed to train or to load a checkpoint (that is :mod:`recbole_awrsr.data`);
the command line is :mod:`recbole_awrsr.datatools.cli`.
"""
