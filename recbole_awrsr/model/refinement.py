"""Attention weight refinement mechanisms: one small module each, one call signature.

Every mechanism maps a layer's first-order attention weights A to refined weights
Ã of the same shape. A row of A says how one position spreads its attention over
the keys, so a second, small attention over those rows (with n x n matrices acting
on the key-position axis) gives higher-order weights. The causal mask is applied
again to every refined matrix, so no mechanism lets a position see later items.

Call signature (shared by all mechanisms)::

    refined = mechanism(probs, scores, mask)

* ``probs``  (B, h, n, n): A = softmax(S + M), before attention dropout.
* ``scores`` (B, h, n, n): the masked logits S + M (only read with ``refine_input: scores``).
* ``mask``   (B, 1, n, n): additive mask M, 0 where key j <= query i is a real item,
  very negative elsewhere.
* returns    (B, h, n, n): Ã, which replaces A when the values are summed.

Adding a mechanism is one class here and one line in :data:`MECHANISMS`.
"""

import math

import torch
from torch import nn

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.wasserstein import pairwise_squared_wasserstein, positive_variance


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

    def higher_order(self, rows, mask):
        """softmax((rows W_q)(rows W_k)^T / sqrt(n) + M): attention between attention rows.

        Computed as rows (W_q W_k^T) rows^T: the n x n product of the two matrices is
        formed once per layer, which saves one of three n^3 products per sequence and head.
        """
        bilinear = self.w_query @ self.w_key.transpose(-1, -2)
        logits = (rows @ bilinear) @ rows.transpose(-1, -2)
        return torch.softmax(logits / self.scale + mask, dim=-1)


class NoRefinement(Refinement):
    """``none``: Ã = A, the plain backbone."""

    def forward(self, probs, scores, mask):
        return probs


class SimpleRefinement(Refinement):
    """``simple``: Ã = softmax(A W_q' (A W_k')^T / sqrt(n) + M)."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask):
        return self.higher_order(self.source(probs, scores, mask), mask)


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

    def forward(self, probs, scores, mask):
        rows = self.source(probs, scores, mask)
        refined = self.higher_order(rows, mask) @ (rows @ self.w_value)
        return refined.masked_fill(mask < 0, 0.0)


class AdditiveRefinement(Refinement):
    """``additive``: Ã = (A + simple(A)) / 2, first- and higher-order weights balanced."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask):
        return 0.5 * (probs + self.higher_order(self.source(probs, scores, mask), mask))


class StochasticRefinement(Refinement):
    """``stochastic`` (STOSA only): each attention row becomes a diagonal Gaussian over n dims.

    mu' = A W_mu', s' = ELU(A W_s') + 1, Ã = softmax(-W2^2(row i, row j) / sqrt(n) + M).
    """

    matrix_names = ("w_mean", "w_cov")
    backbones = ("stosa",)

    def forward(self, probs, scores, mask):
        rows = self.source(probs, scores, mask)
        mean = rows @ self.w_mean
        cov = positive_variance(rows @ self.w_cov)  # ELU + 1, kept strictly positive
        dist = pairwise_squared_wasserstein(mean, cov, mean, cov)
        return torch.softmax(-dist / self.scale + mask, dim=-1)


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
