"""Transformer layers whose self-attention runs a refinement mechanism.

Subclasses of RecBole's layers: the parameter names (``query``, ``key``,
``value``, ``dense``, ``LayerNorm``, ``dense_1``, ...) are RecBole's, so a
``SASRec`` state dict loads into ``SASRecAWR`` with ``refine_mechanism: none``.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from recbole.model.layers import FeedForward, MultiHeadAttention

from recbole_awrsr.model.refinement import pick
from recbole_awrsr.model.wasserstein import at_least_float32


class RefinedMultiHeadAttention(MultiHeadAttention):
    """RecBole's multi-head self-attention with A replaced by ``refinement(A)``.

    Input (B, n, d) and additive mask (B, 1, n, n); output (B, n, d).
    With ``keep_weights = True`` the last call's first-order and refined weights
    (B, h, n, n) stay on the module as ``first_order_weights`` and ``refined_weights``.

    Under autocast (RecBole's ``enable_amp``) the projections and the two products run
    in bfloat16; the logits, softmax and refinement weights are float32, and the residual
    sum is float32 (a bfloat16 projection plus the float32 input), so LayerNorm sees
    float32, as in RecBole's layer under autocast.
    """

    def __init__(self, n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob,
                 layer_norm_eps, refinement):
        super().__init__(n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob,
                         layer_norm_eps)
        self.refinement = refinement
        self.keep_weights = False
        self.first_order_weights = None
        self.refined_weights = None

    def forward(self, input_tensor, attention_mask, positions=None):
        """(B, n, d) -> (B, n, d); only the positions that are read with ``positions``.

        ``positions``: (B,) query positions, one per sequence -> (B, d); or a ``slice`` of
        positions -> (B, q, d). With ``positions`` the output projection, LayerNorm and
        whatever follows run only at the positions that are read (RecBole's ``last``
        training and scoring read one position per sequence, ``train_targets: all``
        the trained positions at the end of each window). A refinement still reads
        every row of A (as keys) but forms only the refined rows that are read; with
        ``none`` only those rows of A are computed at all.
        """
        batch, length, _ = input_tensor.shape
        heads, head_size = self.num_attention_heads, self.attention_head_size
        query = self.query(input_tensor).view(batch, length, heads, head_size).transpose(1, 2)
        key = self.key(input_tensor).view(batch, length, heads, head_size).permute(0, 2, 3, 1)
        value = self.value(input_tensor).view(batch, length, heads, head_size).transpose(1, 2)

        at = positions
        if positions is not None and self.refinement.is_identity and not self.keep_weights:
            # Ã = A: the rows nobody reads need not exist
            query, attention_mask, at = pick(query, positions), pick(attention_mask, positions), None
        # RecBole's arithmetic, in place (no extra attention-sized buffers). Under autocast
        # the product is bfloat16; widened before the mask, as RecBole's out-of-place
        # `+ attention_mask` promotes it, so the logits and softmax are float32
        scores = at_least_float32(torch.matmul(query, key).div_(self.sqrt_attention_head_size))
        scores = scores.add_(attention_mask)
        probs = torch.softmax(scores, dim=-1)
        if self.keep_weights:
            weights = self.refinement(probs, scores, attention_mask)
            self.first_order_weights, self.refined_weights = probs.detach(), weights.detach()
            weights = pick(weights, at)
        else:
            weights = self.refinement(probs, scores, attention_mask, at=at)

        if positions is not None:
            input_tensor = pick(input_tensor.unsqueeze(1), positions).squeeze(1)  # (B, q, d)
            length = input_tensor.size(1)
        context = torch.matmul(self.attn_dropout(weights), value)
        context = context.transpose(1, 2).reshape(batch, length, self.all_head_size)
        hidden = self.LayerNorm(self.out_dropout(self.dense(context)) + input_tensor)
        return hidden.squeeze(1) if torch.is_tensor(positions) else hidden


class FastFeedForward(FeedForward):
    """RecBole's point-wise feed-forward block with PyTorch's fused GELU.

    ``F.gelu`` computes the same erf-based function as RecBole's hand-written
    ``gelu`` (to float rounding), with a much cheaper backward pass.
    """

    def get_hidden_act(self, act):
        if act == "gelu":
            return F.gelu
        return super().get_hidden_act(act)


class RefinedTransformerLayer(nn.Module):
    """Refined self-attention followed by the feed-forward block: (B, n, d) -> (B, n, d)."""

    def __init__(self, n_heads, hidden_size, inner_size, hidden_dropout_prob,
                 attn_dropout_prob, hidden_act, layer_norm_eps, refinement):
        super().__init__()
        self.multi_head_attention = RefinedMultiHeadAttention(
            n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob, layer_norm_eps,
            refinement,
        )
        self.feed_forward = FastFeedForward(
            hidden_size, inner_size, hidden_dropout_prob, hidden_act, layer_norm_eps
        )

    def forward(self, hidden_states, attention_mask, positions=None):
        """(B, n, d) -> (B, n, d), or only the ``positions`` named (see the attention)."""
        if positions is None:
            # the call RecBole's layers make: forward hooks (analysis.attention) see
            # exactly (hidden_states, attention_mask), no None to detach
            return self.feed_forward(self.multi_head_attention(hidden_states, attention_mask))
        return self.feed_forward(self.multi_head_attention(hidden_states, attention_mask, positions=positions))


class RefinedTransformerEncoder(nn.Module):
    """A stack of :class:`RefinedTransformerLayer`, built like RecBole's ``TransformerEncoder``.

    Layers are deep copies of one prototype, as in RecBole, so that a seed gives
    the same random draws (and after the model's weight init, the same weights) as
    RecBole's SASRec when no refinement parameters exist.
    """

    def __init__(self, n_layers, n_heads, hidden_size, inner_size, hidden_dropout_prob,
                 attn_dropout_prob, hidden_act, layer_norm_eps, refinement):
        super().__init__()
        prototype = RefinedTransformerLayer(
            n_heads, hidden_size, inner_size, hidden_dropout_prob, attn_dropout_prob,
            hidden_act, layer_norm_eps, refinement,
        )
        self.layer = nn.ModuleList([copy.deepcopy(prototype) for _ in range(n_layers)])

    def forward(self, hidden_states, attention_mask, output_all_encoded_layers=True):
        """Returns the list of every layer's output (or only the last), as RecBole's encoder does."""
        outputs = []
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
            if output_all_encoded_layers:
                outputs.append(hidden_states)
        if not output_all_encoded_layers:
            outputs.append(hidden_states)
        return outputs

    def forward_at(self, hidden_states, attention_mask, positions):
        """Last layer's output at the positions that are read.

        ``positions``: (B,) one position per sequence, (B, n, d) -> (B, d); or a ``slice``,
        (B, n, d) -> (B, q, d). Same values as ``forward(...)[-1]`` at those positions;
        the last layer skips the positions nobody reads.
        """
        for layer in self.layer[:-1]:
            hidden_states = layer(hidden_states, attention_mask)
        return self.layer[-1](hidden_states, attention_mask, positions)

    def attention_layers(self):
        """The attention module of every layer, first to last."""
        return [layer.multi_head_attention for layer in self.layer]
