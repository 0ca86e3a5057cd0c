"""The comparison's statistics and tables: means over seeds, paired tests, the paper's shapes.

Input is a results frame (one row per run, as :mod:`recbole_awrsr.compare` writes
``results.csv``); output is Markdown: a validation table (what settings are chosen
on: validation metrics and attention sharpness), Table 2 (Recall@1, Recall@5,
NDCG@5 per dataset, change against the same backbone's ``none`` and a paired t-test
over seeds), Table 3 (NDCG@5 by number of layers) and the paired test over test
users (NDCG@10); figures of validation NDCG@10 against sharpness and of each run's
training curves; and a hyperparameter search's trials, ranked.
"""

import os

import numpy as np
import pandas as pd

from recbole_awrsr import model as plugin_models
from recbole_awrsr.files import pyplot
from recbole_awrsr.model.refinement import backbone_of, mechanisms_for

#: ``mechanism`` of the plain backbone and of a RecBole baseline (it has no refinement)
BASE = "none"
NO_MECHANISM = "-"
#: config keys that only a refinement reads: not part of a ``none`` run's variant
REFINE_PREFIX = "refine_"
#: the per-user test metrics written for each run (for the paired test across users)
PER_USER_METRICS = ["ndcg@10", "recall@10"]
TABLE2_METRICS = ["recall@1", "recall@5", "ndcg@5"]
TABLE3_METRIC = "ndcg@5"
LABELS = {"recall@1": "R@1", "recall@5": "R@5", "ndcg@5": "N@5"}


def model_mechanisms(model):
    """The mechanisms of a model in table order, ``none`` first; ``["-"]`` for RecBole's models."""
    backbone = backbone_of(getattr(plugin_models, model, None))
    if backbone is None:
        return [NO_MECHANISM]
    return [BASE] + [name for name in mechanisms_for(backbone) if name != BASE]


def base_variant(variant):
    """The variant of the ``none`` cells a mechanism's cells are compared with."""
    return " ".join(part for part in variant.split() if not part.startswith(REFINE_PREFIX))

def paired_p_value(values, base_values):
    """Two-sided paired t-test p-value over seeds (NaN with fewer than 2 pairs or no spread)."""
    from scipy import stats

    values, base_values = np.asarray(values, float), np.asarray(base_values, float)
    if len(values) < 2:
        return float("nan")
    differences = values - base_values
    if np.allclose(differences, differences[0]):
        return 0.0 if differences[0] != 0 else float("nan")
    return float(stats.ttest_rel(values, base_values).pvalue)


def per_user_p_value(values, base_values):
    """Two-sided paired t-test p-value over users (the same users, the same order)."""
    return paired_p_value(values, base_values)


def short_variants(frame):
    """``{variant: the part of it that differs between the frame's variants}``.

    Keys every row shares (the common settings) say nothing in a table label.
    """
    variants = list(dict.fromkeys(frame["variant"])) if "variant" in frame else [""]
    split = {variant: variant.split() for variant in variants}
    common = set.intersection(*(set(parts) for parts in split.values())) if split else set()
    return {variant: " ".join(part for part in parts if part not in common)
            for variant, parts in split.items()}


def _user_means(per_user, group, column):
    """Each test user's metric averaged over the group's seeds, or None if a file is missing."""
    frames = []
    for record in group.to_dict("records"):
        path = per_user(record)
        if not os.path.isfile(path):
            return None
        frames.append(pd.read_csv(path).set_index("user")[column])
    return pd.concat(frames, axis=1).mean(axis=1)


def labelled(frame):
    """A copy of ``frame`` with ``variant`` ('' where absent) and each row's table ``label``:
    the model and mechanism, and the variant's own keys in brackets (:func:`short_variants`)."""
    frame = frame.copy()
    if "variant" not in frame:
        frame["variant"] = ""
    labels = short_variants(frame)
    frame["label"] = [row_label(m, k) + (f" [{labels[v]}]" if labels[v] else "")
                      for m, k, v in zip(frame["model"], frame["mechanism"], frame["variant"])]
    return frame


def summarize(frame, metrics, per_user=None):
    """Per (dataset, model, mechanism, layers, variant, metric): mean over seeds, change, p.

    The change is relative to the same backbone's ``none`` at the same dataset and
    layers, under the same variant less its refinement keys, over the seeds the row has
    (``none`` may have more), in percent; ``p_value`` pairs the seeds both have; ``p_users`` (metrics of :data:`PER_USER_METRICS`, when
    ``per_user(record)`` gives the path of every run's per-user CSV and they all exist)
    pairs the test users, each user's value averaged over the seeds.
    """
    rows = []
    frame = labelled(frame)
    groups = frame.groupby(["dataset", "model", "mechanism", "layers", "variant"], sort=False)
    for (dataset, model, mechanism, layers, variant), group in groups:
        base = frame[(frame["dataset"] == dataset) & (frame["model"] == model)
                     & (frame["mechanism"] == BASE) & (frame["layers"] == layers)
                     & (frame["variant"] == base_variant(variant))]
        label = group["label"].iloc[0]
        for metric in metrics:
            column = f"test_{metric}"
            if column not in group:
                continue
            mean = group[column].astype(float).mean()
            row = {"dataset": dataset, "model": model, "mechanism": mechanism, "layers": layers,
                   "variant": variant, "label": label,
                   "metric": metric, "mean": mean, "std": group[column].astype(float).std(),
                   "seeds": len(group), "base_mean": float("nan"), "change_pct": float("nan"),
                   "p_value": float("nan"), "p_users": float("nan")}
            if mechanism not in (BASE, NO_MECHANISM) and not base.empty:
                # over the seeds this row has: a none with more seeds is another sample
                base_mean = base[base["seed"].isin(group["seed"])][column].astype(float).mean()
                row["base_mean"] = base_mean
                row["change_pct"] = (mean - base_mean) / base_mean * 100 if base_mean else float("nan")
                paired = group.merge(base, on="seed", suffixes=("", "_base"))
                row["p_value"] = paired_p_value(paired[column], paired[f"{column}_base"])
                if per_user and metric in PER_USER_METRICS:
                    ours = _user_means(per_user, group, metric)
                    theirs = _user_means(per_user, base[base["seed"].isin(group["seed"])], metric)
                    if ours is not None and theirs is not None:
                        ours, theirs = ours.align(theirs, join="inner")
                        row["p_users"] = per_user_p_value(ours, theirs)
            rows.append(row)
    return pd.DataFrame(rows)


def row_label(model, mechanism):
    """A table row's name: the model, and ``+ mechanism`` for a refinement."""
    return model if mechanism in (BASE, NO_MECHANISM) else f"{model} + {mechanism}"


def _entry(row, alpha):
    """One table entry: mean, and for a mechanism its change and significance mark."""
    text = f"{row['mean']:.4f}"
    if row["change_pct"] == row["change_pct"]:  # not NaN
        mark = "*" if row["p_value"] == row["p_value"] and row["p_value"] < alpha else ""
        change = round(row["change_pct"], 1) + 0.0  # + 0.0: no "-0.0%" from rounding noise
        text += f" ({change:+.1f}%){mark}"
    return text


def _row_order(summary):
    """Row labels as the paper orders them: baselines, then each backbone.

    Each backbone's rows start with ``none``, then its mechanisms in
    :data:`~recbole_awrsr.model.refinement.MECHANISMS` order, each mechanism's
    variants in the order they first appear; results merged from several runs come
    out in the same order.
    """
    seen = list(dict.fromkeys(zip(summary["model"], summary["mechanism"], summary["label"])))
    backbones = plugin_models.refined_models()

    def rank(triple):
        model, mechanism, _ = triple
        if model not in backbones:
            return (0, seen.index(triple), 0, 0)
        order = model_mechanisms(model)
        return (1, backbones.index(model),
                order.index(mechanism) if mechanism in order else len(order), seen.index(triple))

    return [label for _, _, label in sorted(seen, key=rank)]


def _depth_key(layers):
    """Sort key of a ``layers`` value read back as text: numerically where it is a number."""
    return (0, int(layers), "") if str(layers).isdigit() else (1, 0, str(layers))


def _depths(summary):
    """The numbers of layers in a summary, in order (``["-"]`` when only baselines ran)."""
    return sorted(set(summary["layers"]) - {NO_MECHANISM}, key=_depth_key) or [NO_MECHANISM]


def table2_markdown(summary, layers, alpha):
    """Table 2 at one number of layers: R@1, R@5, N@5 per dataset, rows model (+ mechanism)."""
    # models without n_layers (GRU4Rec, ...) stand beside every depth
    part = summary[(summary["layers"] == layers) | (summary["layers"] == NO_MECHANISM)]
    datasets = list(dict.fromkeys(part["dataset"]))
    header = ["model"] + [f"{dataset} {LABELS[m]}" for dataset in datasets for m in TABLE2_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    indexed = part.set_index(["dataset", "label", "metric"])
    for label in _row_order(part):
        entries = [label]
        for dataset in datasets:
            for metric in TABLE2_METRICS:
                key = (dataset, label, metric)
                entries.append(_entry(indexed.loc[key], alpha) if key in indexed.index else "")
        lines.append("| " + " | ".join(entries) + " |")
    return "\n".join(lines)


def table3_markdown(summary, alpha):
    """Table 3: NDCG@5 by number of layers, per dataset."""
    part = summary[(summary["metric"] == TABLE3_METRIC) & (summary["layers"] != NO_MECHANISM)]
    datasets = list(dict.fromkeys(part["dataset"]))
    columns = sorted(dict.fromkeys(zip(part["dataset"], part["layers"])),
                     key=lambda column: (datasets.index(column[0]), _depth_key(column[1])))
    header = ["model"] + [f"{dataset} L={layers}" for dataset, layers in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    indexed = part.set_index(["dataset", "layers", "label"])
    for label in _row_order(part):
        entries = [label]
        for dataset, layers in columns:
            key = (dataset, layers, label)
            entries.append(_entry(indexed.loc[key], alpha) if key in indexed.index else "")
        lines.append("| " + " | ".join(entries) + " |")
    return "\n".join(lines)


#: the validation columns of the choice table: (results column, header, format)
VALIDATION_COLUMNS = [
    ("valid_ndcg@10", "valid N@10", ".4f"), ("valid_ndcg@5", "valid N@5", ".4f"),
    ("valid_refined_entropy", "entropy Ã", ".3f"), ("valid_first_entropy", "entropy A", ".3f"),
    ("valid_refined_recent", "recent-5 Ã", ".3f"), ("valid_first_recent", "recent-5 A", ".3f"),
    ("best_epoch", "best epoch", ".0f"), ("seconds", "seconds", ".0f"),
]


def valid_sharpness(frame):
    """``frame`` with refined-weight sharpness that is not a measurement blanked (NaN).

    A relative entropy lies in [0, 1]. Rows written before the measure took signed
    weights as |w| / sum |w| (``value``'s Ã, see :mod:`recbole_awrsr.model.sharpness`)
    have entropies outside it, and their recent mass is a signed sum: both are dropped.
    """
    frame = frame.copy()
    if "valid_refined_entropy" in frame:
        entropy = pd.to_numeric(frame["valid_refined_entropy"], errors="coerce")
        stale = (entropy < -1e-6) | (entropy > 1 + 1e-6)
        for column in ("valid_refined_entropy", "valid_refined_recent"):
            if column in frame:
                frame[column] = pd.to_numeric(frame[column], errors="coerce").mask(stale)
    return frame


def validation_markdown(frame):
    """The table settings are chosen from: validation metrics and attention sharpness.

    One row per (model, mechanism, variant), per dataset and depth: mean ± sd over
    seeds of the best epoch's validation NDCG@10 and NDCG@5, the last layer's
    sharpness on validation sequences (relative row entropy, mass on the 5 most
    recent items; Ã the weights used, A the first-order ones), best epoch and time.
    """
    frame = labelled(valid_sharpness(frame))
    columns = [c for c in VALIDATION_COLUMNS if c[0] in frame]
    parts = []
    for (dataset, layers), part in frame.groupby(["dataset", "layers"], sort=False):
        header = ["model", "runs"] + [title for _, title, _ in columns]
        lines = [f"### {dataset}, n_layers = {layers}", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for label in _row_order(part.drop_duplicates("label")):
            rows = part[part["label"] == label]
            entries = [label, str(len(rows))]
            for column, _, fmt in columns:
                values = pd.to_numeric(rows[column], errors="coerce").dropna()
                if values.empty:
                    entries.append("")
                elif len(values) > 1:
                    entries.append(f"{values.mean():{fmt}} ± {values.std():{fmt}}")
                else:
                    entries.append(f"{values.mean():{fmt}}")
            lines.append("| " + " | ".join(entries) + " |")
        parts += lines + [""]
    return "\n".join(parts)


def users_markdown(summary, alpha):
    """NDCG@10 of each mechanism against ``none``: paired over seeds and over test users."""
    part = summary[(summary["metric"] == "ndcg@10") & summary["p_users"].notna()]
    if part.empty:
        return ""
    lines = ["| dataset | n_layers | model | test N@10 | none | change | p (seeds) | p (users) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in part.to_dict("records"):
        mark = "*" if row["p_users"] < alpha else ""
        lines.append(f"| {row['dataset']} | {row['layers']} | {row['label']} | {row['mean']:.4f} | "
                     f"{row['base_mean']:.4f} | {row['change_pct']:+.1f}% | {row['p_value']:.3g} | "
                     f"{row['p_users']:.3g}{mark} |")
    return "\n".join(lines)


def choice_markdown(frame, metric="valid_ndcg@10"):
    """The choice of a setting on validation: every row ranked by its mean over seeds.

    Per (dataset, n_layers) and plugin backbone: each (mechanism, variant) row with its
    number of runs, mean ± sd of ``metric`` (a results column, the best epoch's
    validation score) and change against the mean of the same backbone's ``none`` runs
    under the same settings less the refinement keys, on the same seeds (as :func:`summarize`), best
    first; the best row is in bold and named in a closing line. RecBole baselines are
    left out (nothing of theirs is chosen here).
    """
    if metric not in frame:
        return ""
    frame = labelled(frame)
    frame = frame[frame["model"].isin(plugin_models.refined_models())]
    title = metric.replace("valid_", "validation ").replace("ndcg", "NDCG").replace("recall", "Recall")
    parts = []
    for (dataset, layers, model), part in frame.groupby(["dataset", "layers", "model"], sort=False):
        scores = part.assign(score=pd.to_numeric(part[metric], errors="coerce"))
        stats = scores.groupby("label", sort=False)["score"].agg(["count", "mean", "std"])
        stats = stats.sort_values("mean", ascending=False, kind="stable")
        rows = scores.drop_duplicates("label").set_index("label")  # each label's mechanism, variant
        nones = scores[scores["mechanism"] == BASE]
        lines = [f"{dataset}, n_layers = {layers}, {model}: mean {title} over seeds, best first", "",
                 f"| rank | setting | runs | {title} | change against none |", "|---|---|---|---|---|"]
        for rank, (label, row) in enumerate(stats.iterrows(), start=1):
            spread = f" ± {row['std']:.4f}" if row["count"] > 1 else ""
            # against the none runs of the same settings less the refinement keys
            seeds = scores[scores["label"] == label]["seed"]
            base = nones[(nones["variant"] == base_variant(rows.at[label, "variant"]))
                         & nones["seed"].isin(seeds)]["score"].mean()
            change = (f"{(row['mean'] - base) / base * 100 + 0.0:+.1f}%"
                      if base == base and base and rows.at[label, "mechanism"] != BASE else "")
            name = f"**{label}**" if rank == 1 else label
            lines.append(f"| {rank} | {name} | {int(row['count'])} | {row['mean']:.4f}{spread} | {change} |")
        best = stats.index[0]
        runs = int(stats["count"].iloc[0])
        lines += ["", f"Highest mean {title}: {best} ({stats['mean'].iloc[0]:.4f}, "
                      f"{runs} run{'' if runs == 1 else 's'})."]
        parts += lines + [""]
    return "\n".join(parts).rstrip("\n")


def report_sections(frame, alpha=0.05, per_user=None):
    """The report of a results frame as named Markdown sections, and its summary.

    Names: ``validation``, ``choice`` (:func:`choice_markdown`), ``table2`` (one table
    per number of layers), ``table2-L<n_layers>`` (the table of one depth), ``table3``
    (only with several depths) and ``users`` (only when per-user files exist). ``docs/results.md`` takes them by name
    (:mod:`recbole_awrsr.report`), ``tables.md`` puts them all together; ``legend``
    says what the test tables' brackets and marks mean (``table2`` starts with it).
    ``per_user(record)``: the path of a run's per-user test metrics (see :func:`summarize`).
    """
    summary = summarize(frame, sorted(set(TABLE2_METRICS) | {TABLE3_METRIC} | set(PER_USER_METRICS)),
                        per_user)
    seeds = sorted(frame["seed"].astype(str).unique(), key=lambda s: (len(s), s))
    legend = (f"Test metrics, mean over seeds {', '.join(seeds)}. In brackets: change against "
              f"the same backbone with `refine_mechanism: none` (same dataset, layers and seeds); "
              f"`*`: p < {alpha} in a two-sided paired t-test over seeds.")
    depths = _depths(summary)
    tables = {f"table2-L{layers}": table2_markdown(summary, layers, alpha) for layers in depths}
    sections = {
        "validation": validation_markdown(frame).rstrip("\n"),
        "choice": choice_markdown(frame) or "(no validation scores in these runs)",
        "legend": legend,
        "table2": "\n\n".join([legend] + [f"n_layers = {layers}:\n\n{tables[f'table2-L{layers}']}"
                                          if len(depths) > 1 else tables[f"table2-L{layers}"]
                                          for layers in depths]),
        **tables,
    }
    if len(depths) > 1:
        sections["table3"] = table3_markdown(summary, alpha)
    users = users_markdown(summary, alpha)
    if users:
        sections["users"] = (f"Each user's NDCG@10 averaged over the seeds both have; two-sided "
                             f"paired t-test over users (`*`: p < {alpha}) beside the paired t-test "
                             f"over seeds.\n\n{users}")
    return sections, summary


def tables_markdown(frame, alpha=0.05, per_user=None):
    """The Markdown report of a results frame (``tables.md``), and the summary it was made from.

    The sections of :func:`report_sections`, under headings.
    """
    sections, summary = report_sections(frame, alpha, per_user)
    return tables_text(sections, summary), summary


def tables_text(sections, summary):
    """``tables.md`` from :func:`report_sections`' output: every section under a heading."""
    parts = ["# Comparison", "", "## Validation (what settings are chosen on)", "",
             sections["validation"], "", "## Choice on validation", "", sections["choice"], "",
             sections["legend"], ""]
    for layers in _depths(summary):
        parts += [f"## Table 2 (n_layers = {layers})", "", sections[f"table2-L{layers}"], ""]
    if "table3" in sections:
        parts += ["## Table 3 (NDCG@5 by n_layers)", "", sections["table3"], ""]
    if "users" in sections:
        parts += ["## Significance across test users (NDCG@10)", "", sections["users"], ""]
    return "\n".join(parts)


def sharpness_figure(frame):
    """Validation NDCG@10 against the last layer's refined-attention entropy, one point per run.

    One panel per (dataset, n_layers); colours are the table rows (model, mechanism,
    variant); the dotted line marks the first-order weights' mean entropy of the
    ``none`` runs. Returns the matplotlib figure (None when no run has sharpness).
    """
    frame = valid_sharpness(frame)
    if "valid_refined_entropy" not in frame or frame["valid_refined_entropy"].isna().all():
        return None
    frame = labelled(frame)
    panels = list(frame.groupby(["dataset", "layers"], sort=False))
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    for axis, ((dataset, layers), part) in zip(axes[0], panels):
        for label in _row_order(part.drop_duplicates("label")):
            runs = part[part["label"] == label]
            axis.scatter(runs["valid_refined_entropy"].astype(float),
                         runs["valid_ndcg@10"].astype(float), label=label, s=30)
        base = part[part["mechanism"] == BASE]["valid_first_entropy"].astype(float)
        if len(base):
            axis.axvline(base.mean(), linestyle=":", color="grey")
        axis.set_xlabel("last layer: mean row entropy / uniform (Ã; none: A)")
        axis.set_ylabel("validation NDCG@10 (best epoch)")
        axis.set_title(f"{dataset}, n_layers = {layers}")
        axis.legend(fontsize=7)
    return figure


#: Ray's statuses of a trial that has ended, as ``trials.csv`` has them: a search with any
#: other status was interrupted (``recbole-awrsr tune`` then chooses nothing)
ENDED = ("TERMINATED", "ERROR")


def searched_keys(trials):
    """The searched config keys of a ``trials.csv`` frame: its columns between ``status``
    and ``epochs_reported`` (as ``recbole-awrsr tune`` writes them)."""
    columns = list(trials.columns)
    return columns[columns.index("status") + 1:columns.index("epochs_reported")]


def search_markdown(trials, chosen=None):
    """A hyperparameter search's ``trials.csv`` as a ranked table, and what was chosen.

    ``trials``: the frame ``recbole-awrsr tune`` writes (``trial_id``, ``status``, the
    searched keys, ``epochs_reported``, ``best_epoch``, ``valid_score`` and the other
    ``valid_*`` metrics of each trial's best epoch, ``error``). Rows are ranked by
    ``valid_score`` (trials without one last), one column per :func:`searched_keys`.
    ``chosen``: the trial id ``best.yaml`` was made from, or None when the search wrote
    none (then the closing line says why).
    """
    searched = searched_keys(trials)
    scores = pd.to_numeric(trials.get("valid_score"), errors="coerce")
    ranked = trials.assign(_score=scores).sort_values("_score", ascending=False, na_position="last",
                                                      kind="stable")
    metrics = [(name, name.replace("valid_", "valid ").replace("ndcg", "N").replace("recall", "R"))
               for name in ("valid_score", "valid_ndcg@10", "valid_recall@10") if name in trials]

    def shown(value):
        number = pd.to_numeric(value, errors="coerce")
        if number != number:  # NaN: not reported
            return "" if value != value else str(value)
        if float(number).is_integer() and abs(number) >= 1:
            return str(int(number))
        return f"{number:.3g}"

    header = ["rank", "trial", "status"] + searched + ["epochs", "best epoch"] + [t for _, t in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(ranked.to_dict("records"), start=1):
        trial = str(row["trial_id"])
        entries = [str(rank), f"**{trial}**" if trial == chosen else trial, str(row["status"])]
        entries += [shown(row[key]) for key in searched]
        entries += [shown(row.get("epochs_reported")), shown(row.get("best_epoch"))]
        entries += ["" if row[name] != row[name] else f"{float(row[name]):.4f}" for name, _ in metrics]
        lines.append("| " + " | ".join(entries) + " |")
    unfinished = int((~trials["status"].isin(ENDED)).sum())
    failed = int((trials["status"] == "ERROR").sum())
    if unfinished:
        closing = (f"{len(trials)} trials, {unfinished} not ended (the search was interrupted): "
                   f"nothing chosen yet.")
    elif chosen is None:
        closing = f"{len(trials)} trials ({failed} failed); no best.yaml written."
    else:
        closing = f"{len(trials)} trials ({failed} failed); best.yaml is trial {chosen}'s configuration."
    return "\n".join(lines + ["", closing])


def curves_figure(frame, history):
    """Each run's training curves from its kept history: validation NDCG@10 and the last
    layer's refined-attention entropy, epoch by epoch.

    ``history(record)`` gives the path of a results row's history CSV
    (:mod:`recbole_awrsr.history` columns); rows without one are left out. One column
    of two panels per (dataset, n_layers): NDCG@10 above, entropy below (``none``:
    the first-order weights'), one line per run, one colour per table row (seeds share
    it). Returns the matplotlib figure, or None when no row has a history.
    """
    frame = labelled(frame)
    curves = []
    for record in frame.to_dict("records"):
        path = history(record)
        if os.path.isfile(path):
            epochs = pd.read_csv(path)
            curves.append((record, epochs[epochs["ndcg@10"].notna()]))
    if not curves:
        return None
    panels = list(dict.fromkeys((r["dataset"], r["layers"]) for r, _ in curves))
    labels = _row_order(frame.drop_duplicates("label"))
    colours = {label: f"C{index % 10}" for index, label in enumerate(labels)}
    plt = pyplot()
    figure, axes = plt.subplots(2, len(panels), figsize=(7 * len(panels), 8), squeeze=False,
                                sharex="col")
    for column, (dataset, layers) in enumerate(panels):
        top, bottom = axes[0][column], axes[1][column]
        named = set()
        for record, epochs in curves:
            if (record["dataset"], record["layers"]) != (dataset, layers):
                continue
            label = record["label"]
            legend = label if label not in named else None
            named.add(label)
            top.plot(epochs["epoch"], epochs["ndcg@10"], color=colours[label], lw=1, label=legend)
            if "refined_entropy" in epochs:
                bottom.plot(epochs["epoch"], epochs["refined_entropy"], color=colours[label], lw=1)
        runs = int(((frame["dataset"] == dataset) & (frame["layers"] == layers)).sum())
        drawn = sum((r["dataset"], r["layers"]) == (dataset, layers) for r, _ in curves)
        kept = "" if drawn == runs else f" ({drawn} of {runs} runs have a kept history)"
        top.set_title(f"{dataset}, n_layers = {layers}{kept}")
        top.set_ylabel("validation NDCG@10")
        bottom.set_ylabel("last layer: refined-attention entropy / uniform")
        bottom.set_xlabel("epoch")
        top.legend(fontsize=7)
    return figure
