"""STOSA's layers: Wasserstein self-attention over two streams (means and covariances).

Every position carries a diagonal Gaussian: a mean vector and a variance vector
(the "cov stream"). Attention logits are the negative squared 2-Wasserstein
distance between query and key Gaussians; means are summed with the attention
weights Ã and variances with Ã * Ã (the variance of a weighted sum of independent
Gaussians). A refinement mechanism (:mod:`recbole_awrsr.model.refinement`) may
replace the first-order weights A by Ã; with ``none`` the layer is plain STOSA.

Under autocast (RecBole's ``enable_amp``) the projections, the weighted sums and the
feed-forward products run in bfloat16; the variances, the distances (hence the
logits), the softmax and the refined weights are float32
(:mod:`recbole_awrsr.model.wasserstein`), and each residual sum (a bfloat16
projection plus the float32 stream) is float32, so LayerNorm sees float32.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_awrsr.model.attention import FastFeedForward
from recbole_awrsr.model.wasserstein import pairwise_squared_wasserstein, positive_variance


class WassersteinMultiHeadAttention(nn.Module):
    """Multi-head Wasserstein self-attention with a refinement mechanism.

    Input: mean and cov streams (B, n, d) and the additive mask (B, 1, n, n);
    output: the two streams (B, n, d), each after dense + dropout + residual + LayerNorm.
    With ``keep_weights = True`` the last call's first-order and refined weights
    (B, h, n, n) stay on the module as ``first_order_weights`` and ``refined_weights``.
    """

    def __init__(self, n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob,
                 layer_norm_eps, refinement):
        super().__init__()
        if hidden_size % n_heads != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be a multiple of n_heads ({n_heads})."
            )
        self.n_heads = n_heads
        self.head_size = hidden_size // n_heads
        self.sqrt_head_size = math.sqrt(self.head_size)
        self.mean_query = nn.Linear(hidden_size, hidden_size)
        self.mean_key = nn.Linear(hidden_size, hidden_size)
        self.mean_value = nn.Linear(hidden_size, hidden_size)
        self.cov_query = nn.Linear(hidden_size, hidden_size)
        self.cov_key = nn.Linear(hidden_size, hidden_size)
        self.cov_value = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = nn.Dropout(attn_dropout_prob)
        self.mean_dense = nn.Linear(hidden_size, hidden_size)
        self.cov_dense = nn.Linear(hidden_size, hidden_size)
        self.out_dropout = nn.Dropout(hidden_dropout_prob)
        self.mean_LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.cov_LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.refinement = refinement
        self.keep_weights = False
        self.first_order_weights = None
        self.refined_weights = None

    def _heads(self, x):
        """(B, n, d) -> (B, h, n, d_h)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_size).transpose(1, 2)

    def _merge(self, x):
        """(B, h, n, d_h) -> (B, n, d)."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_size)

    def forward(self, mean, cov, attention_mask):
        mean_q, mean_k, mean_v = (self._heads(f(mean)) for f in
                                  (self.mean_query, self.mean_key, self.mean_value))
        var_q, var_k, var_v = (self._heads(positive_variance(f(cov))) for f in
                               (self.cov_query, self.cov_key, self.cov_value))

        # S + M = M - D / sqrt(d_h), in one pass over the (B, h, n, n) buffer
        scores = torch.add(attention_mask, pairwise_squared_wasserstein(mean_q, var_q, mean_k, var_k),
                           alpha=-1.0 / self.sqrt_head_size)
        # Blocked keys get the lowest float rather than only -10000 added: distances
        # are unbounded, and an allowed key's logit below -10000 must not lose to a
        # blocked one. Where nothing is extreme, this is softmax(S + M) to the bit.
        probs = torch.softmax(scores.masked_fill(attention_mask < 0, torch.finfo(scores.dtype).min),
                              dim=-1)
        weights = self.refinement(probs, scores, attention_mask)
        if self.keep_weights:
            self.first_order_weights, self.refined_weights = probs.detach(), weights.detach()

        dropped = self.attn_dropout(weights)
        mean_context = self._merge(dropped @ mean_v)
        cov_context = self._merge(dropped.pow(2) @ var_v)
        mean_out = self.mean_LayerNorm(self.out_dropout(self.mean_dense(mean_context)) + mean)
        cov_out = self.cov_LayerNorm(self.out_dropout(self.cov_dense(cov_context)) + cov)
        return mean_out, cov_out


class StreamFeedForward(FastFeedForward):
    """RecBole's point-wise feed-forward block (dense, act, dense, dropout, residual, LN),
    with ``elu`` (STOSA's activation) added to the choices."""

    def get_hidden_act(self, act):
        if act == "elu":
            return F.elu
        return super().get_hidden_act(act)


class WassersteinTransformerLayer(nn.Module):
    """Wasserstein attention, then one feed-forward block per stream.

    (B, n, d) x 2 -> (B, n, d) x 2. The cov stream leaves as ELU(.) + 1 of its
    feed-forward output, so the variances handed to the next layer are positive.
    """

    def __init__(self, n_heads, hidden_size, inner_size, hidden_dropout_prob,
                 attn_dropout_prob, hidden_act, layer_norm_eps, refinement):
        super().__init__()
        self.multi_head_attention = WassersteinMultiHeadAttention(
            n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob, layer_norm_eps,
            refinement,
        )
        self.mean_feed_forward = StreamFeedForward(
            hidden_size, inner_size, hidden_dropout_prob, hidden_act, layer_norm_eps
        )
        self.cov_feed_forward = StreamFeedForward(
            hidden_size, inner_size, hidden_dropout_prob, hidden_act, layer_norm_eps
        )

    def forward(self, mean, cov, attention_mask):
        mean, cov = self.multi_head_attention(mean, cov, attention_mask)
        return self.mean_feed_forward(mean), positive_variance(self.cov_feed_forward(cov))


class WassersteinTransformerEncoder(nn.Module):
    """A stack of :class:`WassersteinTransformerLayer` (deep copies of one prototype).

    ``propagate_mean=False`` reproduces the reference STOSA code, whose encoder never
    hands a layer's mean output to the next layer: every layer then reads the input
    mean stream, and the mean stream leaving the encoder is the one that entered.
    """

    def __init__(self, n_layers, n_heads, hidden_size, inner_size, hidden_dropout_prob,
                 attn_dropout_prob, hidden_act, layer_norm_eps, refinement, propagate_mean=True):
        super().__init__()
        prototype = WassersteinTransformerLayer(
            n_heads, hidden_size, inner_size, hidden_dropout_prob, attn_dropout_prob,
            hidden_act, layer_norm_eps, refinement,
        )
        self.layer = nn.ModuleList([copy.deepcopy(prototype) for _ in range(n_layers)])
        self.propagate_mean = propagate_mean

    def forward(self, mean, cov, attention_mask, output_all_encoded_layers=True):
        """List of (mean, cov) pairs (B, n, d): after every layer, or only the last."""
        outputs = []
        for layer in self.layer:
            layer_mean, cov = layer(mean, cov, attention_mask)
            if self.propagate_mean:
                mean = layer_mean
            if output_all_encoded_layers:
                outputs.append((mean, cov))
        if not output_all_encoded_layers or not outputs:
            outputs.append((mean, cov))
        return outputs

    def attention_layers(self):
        """The attention module of every layer, first to last."""
        return [layer.multi_head_attention for layer in self.layer]
