"""Learning curves: validation NDCG and global gradient norm per epoch (Figs. 4 and 5).

Reads the history CSVs the trainer writes beside each checkpoint
(:mod:`recbole_awrsr.history`); several runs go into one figure.
"""

import glob
import os

import pandas as pd

from recbole_awrsr.errors import AnalysisError
from recbole_awrsr.files import pyplot, save_figure, write_csv
from recbole_awrsr.history import HISTORY_SUFFIX, read_history


def find_histories(paths):
    """History CSV files: a file is taken as given, a folder gives all its ``*.history.csv``."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, f"*{HISTORY_SUFFIX}")))
            if not found:
                raise AnalysisError(f"no *{HISTORY_SUFFIX} file in folder '{path}'")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise AnalysisError(f"no history file or run folder '{path}'")
    return files


def default_metric(histories):
    """``ndcg@10`` if every run has it, else the first NDCG column all runs share."""
    shared = set.intersection(*(set(h.columns) for h in histories))
    if "ndcg@10" in shared:
        return "ndcg@10"
    ndcg = sorted(c for c in shared if c.startswith("ndcg@"))
    if not ndcg:
        raise AnalysisError("the histories share no NDCG column; choose one with --metric")
    return ndcg[0]


def curves_table(paths, metric=None, labels=None):
    """Long table ``run, file, epoch, <metric>, grad_norm, train_loss_mean`` of all runs."""
    files = find_histories(paths)
    if labels is not None and len(labels) != len(files):
        raise AnalysisError(f"{len(labels)} labels for {len(files)} history files")
    histories = [read_history(f) for f in files]
    metric = metric or default_metric(histories)
    for f, history in zip(files, histories):
        if metric not in history.columns:
            columns = ", ".join(c for c in history.columns if "@" in c) or "none"
            raise AnalysisError(f"no column '{metric}' in '{f}' (validation metrics: {columns})")
    if labels is None:
        labels = [str(h["model"].iloc[0]) if "model" in h and len(h) else os.path.basename(f)
                  for f, h in zip(files, histories)]
        labels = [label if labels.count(label) == 1
                  else f"{label} ({os.path.basename(f)[:-len(HISTORY_SUFFIX)]})"
                  for label, f in zip(labels, files)]
    parts = []
    for label, f, history in zip(labels, files, histories):
        part = history[["epoch", metric, "grad_norm", "train_loss_mean"]].copy()
        part.insert(0, "file", f)
        part.insert(0, "run", label)
        parts.append(part)
    return pd.concat(parts, ignore_index=True), metric


def curves_figure(table, metric):
    """Validation ``metric`` (left) and mean global gradient norm (right) per epoch."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, rows in table.groupby("run", sort=False):
        valid = rows.dropna(subset=[metric])
        axes[0].plot(valid["epoch"], valid[metric], marker=".", label=name)
        axes[1].plot(rows["epoch"], rows["grad_norm"], marker=".", label=name)
    axes[0].set_ylabel(f"validation {metric}")
    axes[1].set_ylabel("global gradient norm (mean per epoch)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def run_curves(paths, out, metric=None, labels=None):
    """The ``curves`` command: ``curves.csv`` and ``curves.png`` in ``out``."""
    table, metric = curves_table(paths, metric, labels)
    csv = write_csv(table, os.path.join(out, "curves.csv"))
    png = save_figure(curves_figure(table, metric), os.path.join(out, "curves.png"))
    return {"table": table, "metric": metric, "csv": csv, "png": png}
