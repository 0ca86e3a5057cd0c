"""Attention weight refinement mechanisms: one small module each, one call signature.

From Liu, Liu, Liu, "Pay Attention to Attention for Sequential Recommendation",
RecSys 2024 (arXiv 2410.21048); the formulas are our reconstruction (see the README).

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

Under autocast (RecBole's ``enable_amp``) the n x n products run in bfloat16 (float16
on a GPU) while every softmax, and so A and Ã, stays float32: the logits are widened
before the mask is added (:func:`~recbole_awrsr.model.wasserstein.at_least_float32`),
and the ``stochastic`` distances are float32 (:mod:`recbole_awrsr.model.wasserstein`).
Without autocast nothing is cast and the arithmetic is unchanged.

A batch may also come trimmed to its first L <= n positions (right-padded rows
shorter than L lose only padding). Row i of A is zero beyond key i, so only the
first L rows of each n x n matrix take part, and the result is exactly the
untrimmed one restricted to those positions. The row statistics of the
``centered`` and ``rownorm`` inputs are taken over a row's allowed keys only
(all <= i < L), so they too are the same trimmed or not, and for a prefix.

Three config keys choose how the refined logits are formed (the defaults are
the original reconstruction): ``refine_input`` (what the rows are, see
:meth:`Refinement.source`), ``refine_init`` (the matrices' start, see
:meth:`Refinement.reset_parameters`) and ``refine_temperature`` (the divisor of
the logits, see :meth:`Refinement.temperature`).

Adding a mechanism is one class here and one line in :data:`MECHANISMS`.
"""

import math

import torch
from torch import nn

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.wasserstein import (
    at_least_float32,
    pairwise_squared_wasserstein,
    positive_variance,
)


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
    """Base class: holds the n x n matrices and the choices of input, init and temperature.

    Args:
        n: sequence length (``MAX_ITEM_LIST_LENGTH``); the matrices are n x n.
        n_heads: number of heads; used when the matrices are not shared.
        share_heads: one set of matrices for all heads (shape (n, n)) or one per head ((h, n, n)).
        refine_input: ``probs``, ``scores``, ``centered`` or ``rownorm`` (see :meth:`source`).
        refine_init: ``normal``, ``scaled`` or ``identity`` (see :meth:`reset_parameters`).
        refine_temperature: ``fixed`` (sqrt(n)) or ``learned`` (see :meth:`temperature`).
    """

    #: names of the n x n matrices this mechanism adds, in creation order
    matrix_names = ()
    #: the matrices that ``refine_init: identity`` starts as the identity
    identity_names = ("w_query", "w_key")
    #: which backbones may use it
    backbones = ("sasrec", "stosa")
    #: True only for ``none``: Ã = A, so a layer may compute just the rows it reads
    is_identity = False

    def __init__(self, n, n_heads, share_heads=True, refine_input="probs", refine_init="normal",
                 refine_temperature="fixed"):
        super().__init__()
        self.n = n
        self.scale = math.sqrt(n)
        self.refine_input = refine_input
        self.refine_init = refine_init
        # a mechanism without matrices has no logits to divide: ``none`` stays parameter-free
        self.learned_temperature = refine_temperature == "learned" and bool(self.matrix_names)
        shape = (n, n) if share_heads else (n_heads, n, n)
        for name in self.matrix_names:
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        if self.learned_temperature:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(self.scale)))

    def reset_parameters(self, initializer_range):
        """Initialise the matrices as ``refine_init`` says (W_v' of ``value`` is set by its class).

        * ``normal``: normal(0, initializer_range), like the backbone's other weights. The
          refined logits then start near zero (order 1e-4 for probability rows, whose
          entries are near 1/L) and the refined attention near uniform.
        * ``scaled``: normal(0, 1/sqrt(n)). For rows x_i of unit-scale entries over L_i
          allowed keys (``centered``, ``rownorm``), a component of x_i W has variance
          about L_i std^2, and a logit (x_i W_q).(x_j W_k) / sqrt(n), n such products
          summed and divided by sqrt(n), has variance about L_i L_j std^4 (~ (L std^2)^2):
          with std^2 = 1/n its standard deviation is about sqrt(L_i L_j) / n, of order 1
          once the rows are long.
        * ``identity``: W_q' = W_k' = I (W_mu' = I for ``stochastic``; W_s' as ``normal``), so the
          refined logit of rows i, j starts as the similarity x_i . x_j / sqrt(n) of the two
          attention patterns (attention over attention).

        Every setting draws the same random numbers (identities overwrite their draws), so
        the model's other weights do not depend on ``refine_init``.
        A learned temperature starts at sqrt(n): the ``fixed`` scale.
        """
        std = 1.0 / self.scale if self.refine_init == "scaled" else initializer_range
        for name in self.matrix_names:
            nn.init.normal_(getattr(self, name), mean=0.0, std=std)
        if self.refine_init == "identity":
            for name in self.identity_names:
                self.set_identity(name)
        if self.learned_temperature:
            with torch.no_grad():
                self.log_temperature.fill_(math.log(self.scale))

    def set_identity(self, name):
        """Set the matrix ``name`` (one per head or shared) to the identity."""
        matrix = getattr(self, name)
        with torch.no_grad():
            matrix.copy_(torch.eye(self.n).expand_as(matrix))

    def temperature(self):
        """The divisor of the refined logits: sqrt(n), or exp(log_temperature) when learned."""
        return self.log_temperature.exp() if self.learned_temperature else self.scale

    def source(self, probs, scores, mask):
        """The rows the mechanism refines, zero on blocked keys: (B, h, n, n) each -> (B, h, n, n).

        * ``probs``: A.
        * ``scores``: the masked logits.
        * ``centered``: x_ij = L_i A_ij - 1, with L_i the number of allowed keys of row i: a
          uniform row maps to zeros, a one-hot row to L_i - 1 at its peak and -1 elsewhere.
        * ``rownorm``: x_ij = (A_ij - mean_i) / sqrt(var_i + 1e-5), mean and population
          variance over row i's allowed keys (a LayerNorm without affine parameters);
          a row with one allowed key gives zeros. The 1e-5 outweighs var_i while A is
          close to uniform (entries within ~3e-3 of 1/L), so such rows stay small.
        """
        if self.refine_input == "probs":
            return probs
        blocked = mask < 0
        if self.refine_input == "scores":
            return scores.masked_fill(blocked, 0.0)
        # statistics over allowed keys only (all <= i): prefix- and trimming-exact
        count = (~blocked).sum(-1, keepdim=True).clamp(min=1).to(probs.dtype)  # L_i, (B, 1, n, 1)
        probs = probs.masked_fill(blocked, 0.0)
        if self.refine_input == "centered":
            return (probs * count - 1.0).masked_fill_(blocked, 0.0)
        deviation = (probs - probs.sum(-1, keepdim=True) / count).masked_fill_(blocked, 0.0)
        variance = deviation.pow(2).sum(-1, keepdim=True) / count
        return deviation / torch.sqrt(variance + 1e-5)

    def higher_order(self, rows, mask, at=None):
        """softmax((rows W_q)(rows W_k)^T / temperature + M): attention between attention rows.

        (B, h, n, n) rows and (B, 1, n, n) mask -> (B, h, n, n), or (B, h, 1, n) at ``at``.
        Computed as rows (W_q W_k^T / temperature) rows^T: the scaled n x n product is formed
        once per layer, which saves one of three n^3 products per sequence and head and
        a pass over the logits.
        """
        length = rows.size(-1)
        bilinear = (self.w_query[..., :length, :] @ self.w_key[..., :length, :].transpose(-1, -2))
        bilinear = bilinear / self.temperature()
        logits = (pick(rows, at) @ bilinear) @ rows.transpose(-1, -2)
        # in place: a product's backward does not need its output, and on CPU a fresh
        # attention-sized buffer per operation costs more than the arithmetic. Under
        # autocast the product is bfloat16: widened first, the mask and softmax are float32.
        return torch.softmax(at_least_float32(logits).add_(pick(mask, at)), dim=-1)


class NoRefinement(Refinement):
    """``none``: Ã = A, the plain backbone."""

    is_identity = True
    identity_names = ()

    def forward(self, probs, scores, mask, at=None):
        return pick(probs, at)


class SimpleRefinement(Refinement):
    """``simple``: Ã = softmax(A W_q' (A W_k')^T / sqrt(n) + M)."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask, at=None):
        return self.higher_order(self.source(probs, scores, mask), mask, at)


class ValueRefinement(Refinement):
    """``value``: Ã = mask(simple(x) . V'), V' = A W_v'; the refined weights re-weight transformed rows.

    x is the :meth:`~Refinement.source` rows. V' comes from the source too with ``probs``
    and ``scores`` (the original reconstruction), but from A itself with ``centered`` and
    ``rownorm``: their rows are not distributions, and with A, Ã starts row-stochastic.
    W_v' mixes key positions, so entries of future keys are zeroed again.
    W_v' starts as the identity (whatever ``refine_init``): Ã then starts as simple(x) . A,
    a causal, row-stochastic matrix, instead of near zero (which would silence attention).
    """

    matrix_names = ("w_query", "w_key", "w_value")

    def reset_parameters(self, initializer_range):
        super().reset_parameters(initializer_range)
        self.set_identity("w_value")

    def forward(self, probs, scores, mask, at=None):
        rows = self.source(probs, scores, mask)
        values = rows if self.refine_input in ("probs", "scores") else probs
        # (simple(x) V) W_v: with ``at`` both products are n^2, not n^3
        length = rows.size(-1)
        refined = (self.higher_order(rows, mask, at) @ values) @ self.w_value[..., :length, :length]
        # float32 like every other mechanism's Ã, also when autocast ran the products
        return at_least_float32(refined).masked_fill_(pick(mask, at) < 0, 0.0)


class AdditiveRefinement(Refinement):
    """``additive``: Ã = (A + simple(A)) / 2, first- and higher-order weights balanced."""

    matrix_names = ("w_query", "w_key")

    def forward(self, probs, scores, mask, at=None):
        higher = self.higher_order(self.source(probs, scores, mask), mask, at)
        return torch.lerp(pick(probs, at), higher, 0.5)  # (A + simple(A)) / 2 in one pass


class SmoothRefinement(Refinement):
    """``smooth`` (a control without parameters): Ã = (A + U) / 2, U uniform over each row's allowed keys.

    It is what ``additive`` becomes while its higher-order weights stay uniform, and the
    ``normal`` start keeps them close to that (refined logits of order 1e-4): a run of
    ``smooth`` beside the others tells how much of a mechanism's effect is the plain
    flattening of attention rather than anything learned from the rows. The refinement
    keys (``refine_input``, ``refine_init``, ``refine_temperature``) do not apply.
    """

    identity_names = ()

    def forward(self, probs, scores, mask, at=None):
        allowed = (pick(mask, at) >= 0).to(probs.dtype)  # (B, 1, q, n)
        # a row with no allowed key (none in a causal or padding mask) would get U = 0
        uniform = allowed / allowed.sum(-1, keepdim=True).clamp(min=1)
        return torch.lerp(pick(probs, at), uniform, 0.5)


class StochasticRefinement(Refinement):
    """``stochastic`` (STOSA only): each attention row becomes a diagonal Gaussian over n dims.

    mu' = x W_mu', s' = ELU(x W_s') + 1, Ã = softmax(-W2^2(row i, row j) / temperature + M),
    x the :meth:`~Refinement.source` rows (A by default).
    """

    matrix_names = ("w_mean", "w_cov")
    identity_names = ("w_mean",)
    backbones = ("stosa",)

    def forward(self, probs, scores, mask, at=None):
        rows = self.source(probs, scores, mask)
        length = rows.size(-1)  # a row's Gaussian keeps all n dimensions
        mean = rows @ self.w_mean[..., :length, :]
        cov = positive_variance(rows @ self.w_cov[..., :length, :])  # ELU + 1, kept strictly positive
        dist = pairwise_squared_wasserstein(pick(mean, at), pick(cov, at), mean, cov)
        return torch.softmax(-dist / self.temperature() + pick(mask, at), dim=-1)


#: ``refine_mechanism`` value -> mechanism class
MECHANISMS = {
    "none": NoRefinement,
    "simple": SimpleRefinement,
    "value": ValueRefinement,
    "additive": AdditiveRefinement,
    "smooth": SmoothRefinement,
    "stochastic": StochasticRefinement,
}

#: allowed values of the choice keys, the first one the default
CHOICES = {
    "refine_input": ("probs", "scores", "centered", "rownorm"),
    "refine_init": ("normal", "scaled", "identity"),
    "refine_temperature": ("fixed", "learned"),
}


def mechanisms_for(backbone):
    """The ``refine_mechanism`` values a backbone takes, in table order (``none`` first).

    ``backbone`` is what a refined model class declares as its ``backbone``
    (``sasrec``, ``stosa``); this table is the only list of mechanisms.
    """
    return [name for name, cls in MECHANISMS.items() if backbone in cls.backbones]


def backbone_of(model):
    """The refinement backbone a model class (or an instance) declares; None for models without."""
    return getattr(model, "backbone", None)


def check_refinement_config(config, backbone):
    """Raise ConfigurationError, with the fix, for refinement keys a backbone cannot use."""
    mechanism = config["refine_mechanism"]
    allowed = mechanisms_for(backbone)
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
    for key, values in CHOICES.items():
        if config[key] not in values:
            raise ConfigurationError(f"Unknown {key} '{config[key]}': use one of {', '.join(values)}.")
    if not isinstance(config["refine_share_heads"], bool):
        raise ConfigurationError(
            f"refine_share_heads must be true or false, got {config['refine_share_heads']!r}."
        )


def build_refinement(config, n_heads, n=None):
    """The mechanism module that ``config`` names, for one attention layer.

    ``n``: the longest sequence the layer sees (default ``MAX_ITEM_LIST_LENGTH``).
    """
    return MECHANISMS[config["refine_mechanism"]](
        n=n or config["MAX_ITEM_LIST_LENGTH"],
        n_heads=n_heads,
        share_heads=config["refine_share_heads"],
        **{key: config[key] for key in CHOICES},
    )
