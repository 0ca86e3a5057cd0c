"""How sharp attention is: row entropy against a uniform row, and mass on the recent items.

Both numbers describe one matrix of attention weights (A or the refined Ã) over the
rows that are real query positions. The refinement study reports them beside
accuracy: a refinement that flattens attention pulls it toward average pooling of
the values, one that sharpens concentrates it (the paper's Fig. 3 shows refined
weights on the most recent items).

* ``entropy``: the mean over rows with at least two allowed keys of
  H(row) / log(L), L the row's number of allowed keys: 1 is the uniform row, 0 a
  one-hot row. Relative to log(L), rows of different lengths are comparable.
* ``recent``: the mean over rows with more than ``RECENT`` allowed keys of the
  weight on the ``RECENT`` most recent allowed keys (the query's own position and
  the ones just before it): a uniform row puts RECENT / L there.

Both are taken of p = |w| / sum |w| over a row's allowed keys, which is the row w
itself when w is a distribution (softmax rows: A and the Ã of ``none``, ``simple``,
``additive``, ``stochastic``). The Ã of ``value`` is not: it mixes key positions with
signed weights, and its rows need not be non-negative or sum to 1; p then says how
the row's total weight, of either sign, is spread over the keys.

Shapes: B sequences, h heads, n positions (RecBole's right-padded frame, so the
allowed keys of row i are the real items at positions <= i).
"""

import torch

#: number of most recent allowed keys whose attention mass is reported
RECENT = 5


def allowed_keys(item_seq):
    """The keys each query may attend to: (B, n) right-padded ids -> (B, 1, n, n) bool.

    Key j is allowed for query i when j <= i and position j holds an item: the
    causal and padding mask of both backbones.
    """
    length = item_seq.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=item_seq.device).tril()
    return (causal & (item_seq != 0).unsqueeze(1)).unsqueeze(1)


def row_sharpness(weights, allowed, real_rows, recent=RECENT):
    """Mean relative entropy and mean recent mass of the real rows of ``weights``.

    ``weights`` (B, h, n, n), usually rows summing to 1 over allowed keys (others are
    taken as |w| / sum |w|, see the module docstring); ``allowed`` (B, 1, n, n) bool;
    ``real_rows`` (B, n) bool, the query positions that hold an item. Returns
    ``{"entropy": float, "recent": float}`` (NaN where no row qualifies). Heads are
    averaged like rows; a row with no weight on its allowed keys is skipped.
    """
    allowed = allowed.expand_as(weights)
    weights = weights.detach().float().abs().masked_fill(~allowed, 0.0)
    total = weights.sum(-1, keepdim=True)
    weights = weights / total.clamp_min(1e-30)
    count = allowed.sum(-1)  # (B, h, n): L of each row
    rows = real_rows.unsqueeze(1).expand_as(count) & (total.squeeze(-1) > 0)
    # weights are 0 on blocked keys, so those terms vanish (0 * log 1e-30)
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
    long_enough = rows & (count >= 2)
    relative = entropy[long_enough] / count[long_enough].float().log()
    # the allowed keys are a prefix-closed run ending at the query (right-padded frame,
    # causal mask): the `recent` most recent of them are the last `recent` allowed ones
    rank_from_end = allowed.flip(-1).cumsum(-1).flip(-1)  # 1 for the newest allowed key
    newest = allowed & (rank_from_end <= recent)
    mass = weights.masked_fill(~newest, 0.0).sum(-1)
    has_more = rows & (count > recent)
    return {
        "entropy": relative.mean().item() if relative.numel() else float("nan"),
        "recent": mass[has_more].mean().item() if has_more.any() else float("nan"),
    }


def model_sharpness(model, item_seq, layer=-1, recent=RECENT):
    """Sharpness of one attention layer of a plugin model on right-padded sequences.

    ``item_seq`` (B, n) item ids (0 = padding). Runs ``model.encode`` in eval mode
    without gradients, with the layer keeping its weights, and returns
    ``{"refined_entropy", "refined_recent", "first_entropy", "first_recent"}``: the
    numbers of the weights the layer used (Ã; A under ``none``) and of its
    first-order weights A. The model's mode and random state are left as they were
    (the call draws no random numbers in eval mode, and any it might are forked off).
    """
    module = model.attention_layers()[layer]
    kept, was_training = module.keep_weights, model.training
    module.keep_weights = True
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.encode(item_seq)
        first, refined = module.first_order_weights, module.refined_weights
    finally:
        module.keep_weights = kept
        model.train(was_training)
    real, allowed = item_seq != 0, allowed_keys(item_seq)
    result = {}
    for name, weights in (("refined", refined), ("first", first)):
        for key, value in row_sharpness(weights, allowed, real, recent).items():
            result[f"{name}_{key}"] = value
    return result
