"""Cost of refinement: parameters and measured time per batch, per mechanism (Section 3.5).

For each backbone (SASRecAWR, STOSAAWR) and each mechanism the model is built at the
chosen n (``MAX_ITEM_LIST_LENGTH``), d (hidden size) and number of layers, and compared
with the backbone (mechanism ``none``) and with the backbone given one more layer: the
paper's claim is that refinement (extra O(n^2) parameters and O(n^3) time per layer
and head) costs less than one more self-attention layer when d >= n.

Time = median over repeats of the forward pass and of the backward pass of the
encoder (embeddings and attention layers; or, with ``full_step``, of the whole
training loss) on a random batch of full-length sequences (B, n), in train mode,
on the CPU threads torch is given (``OMP_NUM_THREADS``). Models are timed in turn
at every repeat, so a busy machine slows them alike.
"""

import os
import statistics
import time

import pandas as pd
import torch
from recbole.data.interaction import Interaction

from recbole_awrsr import model as plugin_models
from recbole_awrsr.config import Config
from recbole_awrsr.errors import AnalysisError
from recbole_awrsr.files import write_csv, write_text
from recbole_awrsr.model.refinement import backbone_of, mechanisms_for
from recbole_awrsr.quick_start import new_model

#: backbone -> the model with refinement that declares it
#: (reversed, so that the first model of a backbone wins: ours, not a refined RecBole model)
BACKBONES = {backbone_of(getattr(plugin_models, name)): name
             for name in reversed(plugin_models.refined_models())}


class ShapeOnlyDataset:
    """What a sequential model's constructor reads from a dataset: the item count."""
    def __init__(self, n_items):
        self.n_items = n_items

    def num(self, field):
        return self.n_items


def build_model(model, n, d, layers, heads, items, mechanism, seed=0):
    """A freshly initialised model of the given shape (no data is read), seeded with ``seed``."""
    config = Config(model=model, dataset="ml-100k", config_dict={
        "MAX_ITEM_LIST_LENGTH": n, "hidden_size": d, "inner_size": 4 * d, "n_layers": layers,
        "n_heads": heads, "refine_mechanism": mechanism, "train_targets": "all",
        "device": "cpu", "use_gpu": False, "state": "ERROR", "seed": seed,
    })
    return new_model(config, ShapeOnlyDataset(items)), config


def random_batch(config, batch, n, items, seed=0):
    """A training Interaction of ``batch`` full-length sequences (B, n) with their next items."""
    gen = torch.Generator().manual_seed(seed)
    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    return Interaction({
        seq_field: torch.randint(1, items, (batch, n), generator=gen),
        config["ITEM_LIST_LENGTH_FIELD"]: torch.full((batch,), n, dtype=torch.long),
        config["ITEM_ID_FIELD"]: torch.randint(1, items, (batch,), generator=gen),
    })


def encoder_loss(model, interaction, config):
    """A scalar of the encoder's output at every position: what the mechanisms change.

    The output layer (CE over all items) costs the same for every mechanism and,
    at d = 64 and |I| = 1683, outweighs the attention; it is left out unless asked for.
    """
    seq = interaction[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]]
    return sum(stream.sum() for stream in model.encode(seq))


def time_steps(models, repeats, full_step=False, warmup=2):
    """Median (forward, backward) seconds per model, measured round-robin.

    ``models``: list of (model, config, interaction). Taking the models in turn at
    every repeat spreads a busy machine's slow spells over all of them alike.
    """
    times = [([], []) for _ in models]
    for index in range(warmup + repeats):
        for (model, config, interaction), (forward, backward) in zip(models, times):
            model.train()
            model.zero_grad(set_to_none=True)
            started = time.perf_counter()
            loss = (model.calculate_loss(interaction) if full_step
                    else encoder_loss(model, interaction, config))
            middle = time.perf_counter()
            loss.backward()
            ended = time.perf_counter()
            if index >= warmup:
                forward.append(middle - started)
                backward.append(ended - middle)
    return [(statistics.median(f), statistics.median(b)) for f, b in times]


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def cost_table(n=50, d=64, layers=2, heads=2, batch=128, items=1683, backbones=("sasrec",),
               repeats=10, full_step=False, seed=0):
    """One row per (backbone, variant): parameters, extra parameters and times vs the backbone.

    Variants: ``backbone`` (none, ``layers``), ``backbone +1 layer`` (none, ``layers + 1``),
    then each mechanism at ``layers``. Times: the encoder's forward and backward on a
    batch (B, n), or with ``full_step`` the whole training loss's.
    """
    for name in backbones:
        if name not in BACKBONES:
            raise AnalysisError(f"unknown backbone '{name}': choose from {', '.join(BACKBONES)}")
    if min(n, d, layers, heads, batch, repeats) < 1 or items < 2 or d % heads:
        raise AnalysisError("n, d, layers, heads, batch, repeats must be positive, items >= 2 "
                            "and d a multiple of heads")
    rows, models = [], []
    for name in backbones:
        model_name = BACKBONES[name]
        mechanisms = [mechanism for mechanism in mechanisms_for(name) if mechanism != "none"]
        variants = [("backbone", "none", layers), ("backbone +1 layer", "none", layers + 1)]
        variants += [(mechanism, mechanism, layers) for mechanism in mechanisms]
        for variant, mechanism, depth in variants:
            model, config = build_model(model_name, n, d, depth, heads, items, mechanism, seed)
            models.append((model, config, random_batch(config, batch, n, items, seed)))
            rows.append({"backbone": model_name, "variant": variant, "mechanism": mechanism,
                         "layers": depth, "params": parameter_count(model)})
    for row, (forward, backward) in zip(rows, time_steps(models, repeats, full_step)):
        row["forward_ms"], row["backward_ms"] = 1000 * forward, 1000 * backward
    table = pd.DataFrame(rows)
    table["step_ms"] = table["forward_ms"] + table["backward_ms"]
    for model_name, group in table.groupby("backbone", sort=False):
        base = group[group["variant"] == "backbone"].iloc[0]
        deeper = group[group["variant"] == "backbone +1 layer"].iloc[0]
        table.loc[group.index, "extra_params"] = group["params"] - base["params"]
        table.loc[group.index, "time_vs_backbone"] = group["step_ms"] / base["step_ms"]
        table.loc[group.index, "extra_time_vs_extra_layer"] = (
            (group["step_ms"] - base["step_ms"]) / (deeper["step_ms"] - base["step_ms"]))
    table["extra_params"] = table["extra_params"].astype(int)
    return table


def markdown_table(table, n, d, layers, heads, batch, items, full_step=False):
    """The cost table as Markdown, with the setting it was measured in."""
    columns = ["backbone", "variant", "layers", "params", "extra_params", "forward_ms",
               "backward_ms", "step_ms", "time_vs_backbone", "extra_time_vs_extra_layer"]
    lines = [
        f"n = {n}, d = {d}, layers = {layers}, heads = {heads}, batch = {batch}, "
        f"items = {items}, torch threads = {torch.get_num_threads()}; times (ms, median): "
        f"{'the whole training loss' if full_step else 'the encoder (embeddings + layers)'}, "
        f"forward and backward, per batch",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in table.itertuples(index=False):
        cells = []
        for column in columns:
            value = getattr(row, column)
            if column.endswith("_ms"):
                cells.append(f"{value:.1f}")
            elif column in ("time_vs_backbone", "extra_time_vs_extra_layer"):
                cells.append(f"{value:.2f}")
            elif column in ("params", "extra_params"):
                cells.append(f"{int(value):,}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "time_vs_backbone: step time / the backbone's; extra_time_vs_extra_layer: "
              "(step time - backbone's) / (backbone +1 layer's - backbone's), "
              "below 1 = cheaper than one more layer."]
    return "\n".join(lines) + "\n"


def run_cost(out, n=50, d=64, layers=2, heads=2, batch=128, items=1683, backbones=("sasrec",),
             repeats=10, full_step=False):
    """The ``cost`` command: ``cost.md`` and ``cost.csv`` in ``out``."""
    table = cost_table(n, d, layers, heads, batch, items, backbones, repeats, full_step)
    text = markdown_table(table, n, d, layers, heads, batch, items, full_step)
    md = write_text(os.path.join(out, "cost.md"), text)
    csv = write_csv(table, os.path.join(out, "cost.csv"))
    return {"table": table, "markdown": text, "md": md, "csv": csv}
