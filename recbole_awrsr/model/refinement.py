"""Attention weight refinement mechanisms: one small module each, one call signature.

Every mechanism maps a layer's first-order attention weights A to refined weights
Ã of the same shape. A row of A says how one position spreads its attention over
the keys, so a second, small attention over those rows (with n x n matrices acting
on the key-position axis) gives higher-order weights. The causal mask is applied
again to every refined matrix, so no mechanism lets a position see later items.

Call signature (shared by all mechanisms)::

    refined = mechanism(probs, scores, mask, at=None)

* ``probs``  (B, h, n, n): A = softmax(S + M), before attention dropout.
* ``scores`` (B, h, n, n): the masked logits S + M (only read with ``refine_input: scores``).
* ``mask``   (B, 1, n, n): additive mask M, 0 where key j <= query i is a real item,
  very negative elsewhere.
* ``at``     None, (B,) query positions or a ``slice`` of positions: only those rows
  of Ã are wanted (see :func:`pick`). Every row of A is still needed (as keys), but
  the n^3 products shrink to q n^2 ones for q wanted rows.
* returns    (B, h, n, n): Ã, which replaces A when the values are summed; with ``at``,
  (B, h, 1, n) (row ``at[b]`` of it) or (B, h, q, n) (the rows of the slice).

A batch may also come trimmed to its first L <= n positions (right-padded rows
shorter than L lose only padding). Row i of A is zero beyond key i, so only the
first L rows of each n x n matrix take part, and the result is exactly the
untrimmed one restricted to those positions.

Adding a mechanism is one class here and one line in :data:`MECHANISMS`.
"""

import math

import torch
from torch import nn

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.wasserstein import pairwise_squared_wasserstein, positive_variance


def pick(matrices, at):
    """The rows that are read of each sequence's (c, n, m) matrices.

    ``at``: None (every row, ``matrices`` itself); a (B,) tensor, row ``at[b]`` of
    sequence b: (B, c, n, m) -> (B, c, 1, m); or a ``slice`` of rows, the same for
    every sequence: (B, c, n, m) -> (B, c, q, m).
    """
    if at is None:
        return matrices
    if isinstance(at, slice):
        return matrices[:, :, at]
    batch = torch.arange(matrices.size(0), device=matrices.device)
    return matrices[batch, :, at].unsqueeze(2)


class Refinement(nn.Module):
    """Base class: holds the n x n matrices and the choice of input.

    Args:
        n: sequence length (``MAX_ITEM_LIST_LENGTH``); the matrices are n x n.
        n_heads: number of heads; used when the matrices are not shared.
        share_heads: one set of matrices for all heads (shape (n, n)) or one per head ((h, n, n)).
        refine_input: ``probs`` (A) or ``scores`` (the masked logits, blocked entries set to 0).
    """

    #: names of the n x n matrices this mechanism adds, in creation order
    matrix_names = ()
    #: which backbones may use it
    backbones = ("sasrec", "stosa")
    #: True only for ``none``: Ã = A, so a layer may compute just the rows it reads
    is_identity = False

    def __init__(self, n, n_heads, share_heads=True, refine_input="probs"):
        super().__init__()
        self.n = n
        self.scale = math.sqrt(n)
        self.refine_input = refine_input
        shape = (n, n) if share_heads else (n_heads, n, n)
        for name in self.matrix_names:
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))

    def reset_parameters(self, initializer_range):
        """Normal(0, initializer_range), like the backbone's other weights.

        Small weights make the refined logits start near zero, so the refined
        attention starts near uniform over the allowed keys, as the backbone's does.
        """
        for name in self.matrix_names:
            nn.init.normal_(getattr(self, name), mean=0.0, std=initializer_range)

    def source(self, probs, scores, mask):
        """The rows the mechanism refines: A, or the logits with blocked entries zeroed."""
        if self.refine_input == "probs":
            return probs
        return scores.masked_fill(mask < 0, 0.0)

    def higher_order(self, rows, mask, at=None):
        """softmax((rows W_q)(rows W_k)^T / sqrt(n) + M): attention between attention rows.

        (B, h, n, n) rows and (B, 1, n, n) mask -> (B, h, n, n), or (B, h, 1, n) at ``at``.
        Computed as rows (W_q W_k^T / sqrt(n)) rows^T: the scaled n x n product is formed
        once per layer, which saves one of three n^3 products per sequence and head and
        a pass over the logits.
        """
        length = rows.size(-1)
        bilinear = (self.w_query[..., :length, :] @ self.w_key[..., :length, :].transpose(-1, -2))
        bilinear = bilinear / self.scale
        logits = (pick(rows, at) @ bilinear) @ rows.transpose(-1, -2)
        # in place: a product's backward does not need its output, and on CPU a fresh
        # attention-sized buffer per operation costs more than the arithmetic
        return torch.softmax(logits.add_(pick(mask, at)), dim=-1)


class NoRefinement(Refinement):
    """``none``: Ã = A, the plain backbone."""

    is_identity = True

    def forward(self, probs, scores, mask, at=None):
        return pick(probs, at)


class SimpleRefinement(Refinement):
    """``simple``: Ã = softmax(A W_q' (A W_k')^T / sqrt(n) + M)."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask, at=None):
        return self.higher_order(self.source(probs, scores, mask), mask, at)


class ValueRefinement(Refinement):
    """``value``: Ã = mask(simple(A) . A W_v'); the refined weights re-weight transformed rows.

    W_v' mixes key positions, so entries of future keys are zeroed again.
    W_v' starts as the identity: Ã then starts as simple(A) . A, a causal,
    row-stochastic matrix, instead of near zero (which would silence attention).
    """

    matrix_names = ("w_query", "w_key", "w_value")

    def reset_parameters(self, initializer_range):
        super().reset_parameters(initializer_range)
        with torch.no_grad():
            self.w_value.copy_(torch.eye(self.n).expand_as(self.w_value))

    def forward(self, probs, scores, mask, at=None):
        rows = self.source(probs, scores, mask)
        # (simple(A) A) W_v: with ``at`` both products are n^2, not n^3
        length = rows.size(-1)
        refined = (self.higher_order(rows, mask, at) @ rows) @ self.w_value[..., :length, :length]
        return refined.masked_fill_(pick(mask, at) < 0, 0.0)


class AdditiveRefinement(Refinement):
    """``additive``: Ã = (A + simple(A)) / 2, first- and higher-order weights balanced."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask, at=None):
        higher = self.higher_order(self.source(probs, scores, mask), mask, at)
        return torch.lerp(pick(probs, at), higher, 0.5)  # (A + simple(A)) / 2 in one pass


class StochasticRefinement(Refinement):
    """``stochastic`` (STOSA only): each attention row becomes a diagonal Gaussian over n dims.

    mu' = A W_mu', s' = ELU(A W_s') + 1, Ã = softmax(-W2^2(row i, row j) / sqrt(n) + M).
    """

    matrix_names = ("w_mean", "w_cov")
    backbones = ("stosa",)

    def forward(self, probs, scores, mask, at=None):
        rows = self.source(probs, scores, mask)
        length = rows.size(-1)  # a row's Gaussian keeps all n dimensions
        mean = rows @ self.w_mean[..., :length, :]
        cov = positive_variance(rows @ self.w_cov[..., :length, :])  # ELU + 1, kept strictly positive
        dist = pairwise_squared_wasserstein(pick(mean, at), pick(cov, at), mean, cov)
        return torch.softmax(-dist / self.scale + pick(mask, at), dim=-1)


#: ``refine_mechanism`` value -> mechanism class
MECHANISMS = {
    "none": NoRefinement,
    "simple": SimpleRefinement,
    "value": ValueRefinement,
    "additive": AdditiveRefinement,
    "stochastic": StochasticRefinement,
}

REFINE_INPUTS = ("probs", "scores")


def check_refinement_config(config, backbone):
    """Raise ValueError, with the fix, for refinement keys a backbone cannot use."""
    mechanism = config["refine_mechanism"]
    allowed = [name for name, cls in MECHANISMS.items() if backbone in cls.backbones]
    if mechanism not in MECHANISMS:
        raise ConfigurationError(
            f"Unknown refine_mechanism '{mechanism}' for model {config['model']}: "
            f"use one of {', '.join(allowed)}."
        )
    if backbone not in MECHANISMS[mechanism].backbones:
        raise ConfigurationError(
            f"refine_mechanism '{mechanism}' needs the stochastic backbone and does not apply to "
            f"model {config['model']}: use --model=STOSAAWR, or one of {', '.join(allowed)}."
        )
    if config["refine_input"] not in REFINE_INPUTS:
        raise ConfigurationError(
            f"Unknown refine_input '{config['refine_input']}': use one of {', '.join(REFINE_INPUTS)}."
        )
    if not isinstance(config["refine_share_heads"], bool):
        raise ConfigurationError(
            f"refine_share_heads must be true or false, got {config['refine_share_heads']!r}."
        )


def build_refinement(config, n_heads):
    """The mechanism module that ``config`` names, for one attention layer."""
    return MECHANISMS[config["refine_mechanism"]](
        n=config["MAX_ITEM_LIST_LENGTH"],
        n_heads=n_heads,
        share_heads=config["refine_share_heads"],
        refine_input=config["refine_input"],
    )
