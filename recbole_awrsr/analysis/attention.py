"""Exporting the attention weights a model used, and drawing them as heat maps (Fig. 3).

For the plugin's models (SASRecAWR, STOSA, STOSAAWR) the attention modules keep the
last call's first-order weights A and refined weights Ã themselves (``keep_weights``).
RecBole's own ``MultiHeadAttention`` (plain SASRec, the usual base model) stores
nothing; its weights are recomputed from its ``query``/``key`` layers on the layer
input, which a forward hook captures: A = softmax(Q K^T / sqrt(d_h) + M).

Shapes: B sequences, h heads, n = ``MAX_ITEM_LIST_LENGTH``, d hidden size. Sequences
are RecBole's right-padded ones: position 0 is the oldest item of the window.
"""

import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recbole_awrsr.errors import AnalysisError
from recbole_awrsr.files import pyplot, save_figure, write_csv
from recbole_awrsr.model.sharpness import RECENT, allowed_keys, row_sharpness
from recbole_awrsr.quick_start import load_data_and_model


@dataclass
class LayerAttention:
    """What one attention layer did on a batch (all detached, eval mode).

    ``first_order``: A (B, h, n, n), after the softmax, before dropout.
    ``refined``: Ã (B, h, n, n), the weights the values were summed with; ``None`` for a
    layer without refinement (RecBole's attention), where A is what was used.
    ``inputs``: the layer's input tensors (SASRec: ``(hidden (B,n,d), mask (B,1,n,n))``;
    STOSA: ``(mean, cov, mask)``). ``output``: the attention module's output (a tensor,
    or STOSA's ``(mean, cov)`` pair).
    """

    first_order: torch.Tensor
    refined: torch.Tensor
    inputs: tuple
    output: object

    @property
    def used(self):
        """The weights the layer summed the values with: Ã, or A without refinement."""
        return self.first_order if self.refined is None else self.refined


def attention_modules(model):
    """The self-attention module of every layer, first to last.

    The plugin's models say it themselves (``attention_layers()``, the shared model
    contract); RecBole models built on its ``TransformerEncoder`` (SASRec ...) keep the
    modules as ``trm_encoder.layer[i].multi_head_attention``.
    """
    if hasattr(model, "attention_layers"):
        return list(model.attention_layers())
    layers = getattr(getattr(model, "trm_encoder", None), "layer", None)
    if layers is not None and all(hasattr(layer, "multi_head_attention") for layer in layers):
        return [layer.multi_head_attention for layer in layers]
    raise AnalysisError(
        f"{type(model).__name__} has no self-attention layers the analysis knows "
        f"(SASRecAWR, STOSA, STOSAAWR or RecBole's transformer models such as SASRec)."
    )


def recompute_first_order(module, hidden, mask):
    """A of RecBole's ``MultiHeadAttention`` from its input: (B,n,d), (B,1,n,n) -> (B,h,n,n)."""
    batch, length, _ = hidden.shape
    heads, size = module.num_attention_heads, module.attention_head_size
    query = module.query(hidden).view(batch, length, heads, size).transpose(1, 2)
    key = module.key(hidden).view(batch, length, heads, size).transpose(1, 2)
    scores = query @ key.transpose(-1, -2) / math.sqrt(size) + mask
    return torch.softmax(scores, dim=-1)


def export_attention(model, item_seq, item_seq_len):
    """Run the model on sequences and return a :class:`LayerAttention` per layer.

    ``item_seq`` (B, n) right-padded item ids, ``item_seq_len`` (B,). The model is put
    in eval mode (no dropout), as when it ranks items; its mode is restored after.
    """
    modules = attention_modules(model)
    captured = [None] * len(modules)

    def hook_for(index):
        def hook(module, args, kwargs, output):
            captured[index] = (tuple(a.detach() for a in args) + tuple(
                v.detach() for v in kwargs.values()), output)
        return hook

    handles, kept = [], []
    for index, module in enumerate(modules):
        handles.append(module.register_forward_hook(hook_for(index), with_kwargs=True))
        kept.append(getattr(module, "keep_weights", None))
        if kept[-1] is not None:
            module.keep_weights = True
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # every position of every layer: ``encode`` where the model has it
            # (its ``forward`` computes only the read-out position in the last layer)
            if hasattr(model, "encode"):
                model.encode(item_seq)
            else:
                model.forward(item_seq, item_seq_len)
            layers = []
            for module, (inputs, output) in zip(modules, captured):
                if hasattr(module, "keep_weights"):
                    first, refined = module.first_order_weights, module.refined_weights
                else:
                    first, refined = recompute_first_order(module, inputs[0], inputs[-1]), None
                layers.append(LayerAttention(first, refined, inputs, output))
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(modules, kept):
            if flag is not None:
                module.keep_weights = flag
        model.train(was_training)
    return layers


@dataclass
class UserSequence:
    """One user's test sequence: what the model reads to predict the held-out item."""
    user: str
    item_seq: torch.Tensor  # (1, n) right-padded internal ids
    length: int
    items: list  # item tokens of the ``length`` real positions, oldest first


#: test sequences the per-layer sharpness is measured on (the first ones, in the test split's order)
SHARPNESS_USERS = 2048


def layer_sharpness(model, dataset, test_data, users=SHARPNESS_USERS):
    """Per layer, how sharp the first-order and the refined weights are on test sequences.

    For the first ``users`` test sequences, each layer's weights A and Ã (A where the
    layer refines nothing) are measured by :func:`recbole_awrsr.model.sharpness.row_sharpness`:
    the mean row entropy relative to a uniform row over the same allowed keys, and the
    mass on the :data:`~recbole_awrsr.model.sharpness.RECENT` most recent allowed keys.
    Returns a DataFrame: ``layer``, ``weights`` (``refined``/``first_order``), ``entropy``,
    ``recent``, ``sequences``.
    """
    item_seq = test_data.dataset.inter_feat[dataset.item_id_list_field][:users]
    lengths = (item_seq != 0).sum(1)
    allowed, real = allowed_keys(item_seq), item_seq != 0
    rows = []
    for index, layer in enumerate(export_attention(model, item_seq, lengths)):
        for name, weights in (("refined", layer.used), ("first_order", layer.first_order)):
            numbers = row_sharpness(weights, allowed, real)
            rows.append({"layer": index, "weights": name, "entropy": numbers["entropy"],
                         "recent": numbers["recent"], "sequences": len(item_seq)})
    return pd.DataFrame(rows)


def format_sharpness(frame):
    """The per-layer sharpness as a few printable lines."""
    lines = [f"attention sharpness on {int(frame['sequences'].iloc[0])} test sequences "
             f"(entropy: mean row entropy / uniform, 1 = uniform; recent: mass on the "
             f"{RECENT} most recent items)"]
    for layer, part in frame.groupby("layer"):
        values = part.set_index("weights")
        lines.append(f"  layer {layer}: refined entropy {values.loc['refined', 'entropy']:.3f} "
                     f"recent {values.loc['refined', 'recent']:.3f} | first-order entropy "
                     f"{values.loc['first_order', 'entropy']:.3f} recent "
                     f"{values.loc['first_order', 'recent']:.3f}")
    return "\n".join(lines)


def user_sequence(dataset, test_data, user=None):
    """The test-set input sequence of the user with token ``user``.

    ``user=None`` picks the user with the longest test sequence (the first such).
    Unknown tokens raise :class:`AnalysisError`.
    """
    uid_field = dataset.uid_field
    test = test_data.dataset.inter_feat
    seq_field, len_field = dataset.item_id_list_field, dataset.item_list_length_field
    users = test[uid_field].numpy()
    if user is None:
        row = int(np.argmax(test[len_field].numpy()))
    else:
        tokens = dataset.field2token_id[uid_field]
        if str(user) not in tokens:
            examples = ", ".join(str(t) for t in list(tokens)[1:4])
            raise AnalysisError(
                f"unknown user '{user}': not a user token of dataset "
                f"'{dataset.dataset_name}' (tokens as in its .inter file, e.g. {examples})"
            )
        rows = np.flatnonzero(users == tokens[str(user)])
        if rows.size == 0:
            raise AnalysisError(f"user '{user}' has no test sequence in '{dataset.dataset_name}'")
        row = int(rows[0])
    length = int(test[len_field][row])
    item_seq = test[seq_field][row : row + 1].clone()
    ids = item_seq[0, :length].tolist()
    return UserSequence(
        user=str(dataset.id2token(uid_field, int(users[row]))),
        item_seq=item_seq,
        length=length,
        items=[str(token) for token in dataset.id2token(dataset.iid_field, ids)],
    )


def check_layer_head(layers, layer, head):
    """Refuse a layer or head index the model does not have (``head=None``: mean of heads)."""
    if not -len(layers) <= layer < len(layers):
        raise AnalysisError(
            f"unknown layer {layer}: the model has {len(layers)} attention layer(s), "
            f"0..{len(layers) - 1}"
        )
    heads = layers[layer].first_order.shape[1]
    if head is not None and not 0 <= head < heads:
        raise AnalysisError(f"unknown head {head}: layer {layer % len(layers)} has {heads} head(s), 0..{heads - 1}")


def window(weights, length, last, head):
    """The last ``last`` real positions of one sequence's weights: (1,h,n,n) -> (k, k) array.

    ``head=None`` averages the heads (a mean of row distributions is a distribution).
    Rows of the window need not sum to 1: the earlier keys they also attend to are cut.
    """
    matrix = weights[0].mean(0) if head is None else weights[0, head]
    start = max(0, length - last)
    return matrix[start:length, start:length].cpu().numpy()


def matrix_frame(matrix, labels):
    """A (k, k) matrix as a DataFrame; rows = query positions, columns = key positions."""
    return pd.DataFrame(matrix, index=pd.Index(labels, name="query"), columns=labels)


def position_labels(sequence, last):
    """``pos:item`` labels of the shown positions (position in the model's window)."""
    start = max(0, sequence.length - last)
    return [f"{p}:{sequence.items[p]}" for p in range(start, sequence.length)]


def heatmap_figure(panels, title, positions=None):
    """Side-by-side heat maps on one colour scale; ``panels`` = [(name, (k,k) array)].

    ``positions``: the k window positions, used as tick labels.
    """

    plt = pyplot()
    vmax = max(float(m.max()) for _, m in panels) or 1.0
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 3.6),
                                squeeze=False)
    image = None
    for axis, (name, matrix) in zip(axes[0], panels):
        image = axis.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax)
        axis.set_title(name, fontsize=10)
        if positions is not None:
            ticks = list(range(0, len(positions), max(1, len(positions) // 7)))
            axis.set_xticks(ticks, [str(positions[t]) for t in ticks])
            axis.set_yticks(ticks, [str(positions[t]) for t in ticks])
        axis.set_xlabel("key position")
        axis.set_ylabel("query position")
    figure.colorbar(image, ax=list(axes[0]), fraction=0.025, pad=0.02)
    figure.suptitle(title, fontsize=10)
    return figure


def model_name(config):
    """``SASRecAWR simple``, ``SASRec``, ...: the model and its mechanism, if any."""
    mechanism = config["refine_mechanism"]
    return f"{config['model']} {mechanism}" if mechanism else str(config["model"])


def run_attention(model_file, out, user=None, layer=-1, head=None, last=15, base_model_file=None,
                  trusted=False):
    """The ``attention`` command: heat maps (PNG) and matrices (CSV) of one user's sequence.

    Panels: the base model's weights (if ``base_model_file``), the model's first-order
    weights A and its refined weights Ã (one panel ``A`` when the model refines nothing).
    ``layer`` counts from 0 (negative from the end), ``head=None`` averages the heads.
    ``trusted``: unpickle the checkpoints fully (see :func:`recbole_awrsr.compat.load_checkpoint`).
    Also measures every layer's sharpness on the test sequences (:func:`layer_sharpness`),
    written to ``sharpness.csv`` and printed. Returns ``{"png": path, "csv": [paths],
    "user": token, "sharpness": path}``.
    """


    if last < 1:
        raise AnalysisError(f"--last must be at least 1, got {last}")
    config, model, dataset, _, _, test_data = load_data_and_model(model_file, trusted=trusted)
    sequence = user_sequence(dataset, test_data, user)
    length = torch.tensor([sequence.length])
    layers = export_attention(model, sequence.item_seq, length)
    check_layer_head(layers, layer, head)
    layer_index = layer % len(layers)
    chosen = layers[layer_index]

    matrices = []  # (csv suffix, panel title, (k,k) array)
    if base_model_file is not None:
        base_config, base_model, base_dataset, _, _, base_test = load_data_and_model(
            base_model_file, trusted=trusted)
        if base_config["dataset"] != config["dataset"]:
            raise AnalysisError(
                f"the base model was trained on '{base_config['dataset']}', the model on "
                f"'{config['dataset']}': give two checkpoints of the same dataset"
            )
        base_sequence = user_sequence(base_dataset, base_test, sequence.user)
        base_layers = export_attention(base_model, base_sequence.item_seq,
                                       torch.tensor([base_sequence.length]))
        try:
            check_layer_head(base_layers, layer, head)
        except AnalysisError as error:
            raise AnalysisError(f"base model: {error}") from None
        matrices.append(("base", f"base: {model_name(base_config)}",
                         window(base_layers[layer % len(base_layers)].used,
                                base_sequence.length, last, head)))
    refines = chosen.refined is not None and not torch.equal(chosen.refined, chosen.first_order)
    name = model_name(config)
    if refines:
        matrices.append(("first_order", f"{name}: first-order A", window(
            chosen.first_order, sequence.length, last, head)))
        matrices.append(("refined", f"{name}: refined Ã", window(
            chosen.refined, sequence.length, last, head)))
    else:
        matrices.append(("first_order", f"{name}: A", window(
            chosen.first_order, sequence.length, last, head)))

    head_name = "mean" if head is None else str(head)
    stem = os.path.join(out, f"attention_user{sequence.user}_layer{layer_index}_head{head_name}")
    labels = position_labels(sequence, last)
    csvs = [write_csv(matrix_frame(matrix, labels), f"{stem}_{suffix}.csv", index=True)
            for suffix, _, matrix in matrices]
    title = (f"user {sequence.user}, layer {layer_index}, "
             f"{'mean of heads' if head is None else f'head {head}'}, last "
             f"{min(last, sequence.length)} of {sequence.length} positions")
    positions = list(range(max(0, sequence.length - last), sequence.length))
    png = save_figure(heatmap_figure([(t, m) for _, t, m in matrices], title, positions),
                      f"{stem}.png")
    sharpness = layer_sharpness(model, dataset, test_data)
    print(format_sharpness(sharpness))
    sharpness_csv = write_csv(sharpness, os.path.join(out, "sharpness.csv"))
    return {"png": png, "csv": csvs, "user": sequence.user, "sharpness": sharpness_csv}
