"""NDCG@N and Recall@N on the test set for several models and several N (Fig. 2).

The metrics come from RecBole's own evaluator: the checkpoint's config gets
``topk = N`` and ``metrics = [Recall, NDCG]`` before a trainer (and so its
evaluator and collector) is built, and the test set is ranked in full as in training.
"""

import os

import pandas as pd

from recbole_awrsr.analysis.attention import model_name
from recbole_awrsr.errors import AnalysisError
from recbole_awrsr.files import pyplot, save_figure, write_csv
from recbole_awrsr.quick_start import load_data_and_model
from recbole_awrsr.registry import get_trainer

METRICS = ("NDCG", "Recall")


def evaluate_at(model_file, ns, trusted=False):
    """``({"ndcg@N": v, "recall@N": v, ...}, label)`` of one checkpoint on its test set."""
    config, model, _, _, _, test_data = load_data_and_model(model_file, trusted=trusted)
    config["topk"] = list(ns)
    config["metrics"] = list(METRICS)
    # RecBole rounds results to 4 places by default; the curves want more
    config["metric_decimal_place"] = 6
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return dict(result), model_name(config)


def unique_labels(labels, files):
    """Labels made unique by appending the checkpoint's file stem where two coincide."""
    return [label if labels.count(label) == 1
            else f"{label} ({os.path.splitext(os.path.basename(f))[0]})"
            for label, f in zip(labels, files)]


def topn_table(model_files, ns, labels=None, trusted=False):
    """One row per model and N: ``model, file, N, ndcg, recall``."""
    if not model_files:
        raise AnalysisError("give at least one checkpoint with --model-files")
    ns = sorted(set(int(n) for n in ns))
    if not ns or ns[0] < 1:
        raise AnalysisError(f"--n needs positive integers, got {ns}")
    if labels is not None and len(labels) != len(model_files):
        raise AnalysisError(f"{len(labels)} labels for {len(model_files)} checkpoints")
    results, names = [], []
    for model_file in model_files:
        result, name = evaluate_at(model_file, ns, trusted)
        results.append(result)
        names.append(name)
    names = labels or unique_labels(names, model_files)
    rows = [{"model": name, "file": model_file, "N": n,
             "ndcg": result[f"ndcg@{n}"], "recall": result[f"recall@{n}"]}
            for name, model_file, result in zip(names, model_files, results) for n in ns]
    return pd.DataFrame(rows)


def topn_figure(table):
    """NDCG@N and Recall@N against N, one line per model."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, rows in table.groupby("model", sort=False):
        for axis, column in zip(axes, ("ndcg", "recall")):
            axis.plot(rows["N"], rows[column], marker="o", label=name)
    for axis, column in zip(axes, ("NDCG@N", "Recall@N")):
        axis.set_xlabel("N")
        axis.set_ylabel(column)
        axis.set_xscale("log")
        axis.set_xticks(sorted(table["N"].unique()))
        axis.set_xticklabels([str(n) for n in sorted(table["N"].unique())])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("test set, full ranking", fontsize=10)
    figure.tight_layout()
    return figure


def run_topn(model_files, out, ns=(1, 2, 5, 10, 20), labels=None, trusted=False):
    """The ``topn`` command: ``topn.csv`` and ``topn.png`` in ``out``; returns the table and paths."""
    table = topn_table(model_files, ns, labels, trusted)
    csv = write_csv(table, os.path.join(out, "topn.csv"))
    png = save_figure(topn_figure(table), os.path.join(out, "topn.png"))
    return {"table": table, "csv": csv, "png": png}
