"""STOSA (stochastic self-attention, Fan et al., WWW 2022) in RecBole, and STOSAAWR.

Items and positions are diagonal Gaussians (a mean and a variance embedding);
the encoder is :class:`~recbole_awrsr.model.wasserstein_attention.WassersteinTransformerEncoder`;
an item's score for a sequence is minus the squared 2-Wasserstein distance between
the sequence's output Gaussian and the item's, so RecBole's evaluator ranks the
nearest item first. Sequences are in RecBole's right-padded frame (position 0 =
the oldest item of the window) and the output is read at ``item_seq_len - 1``.

Papers: Fan, Liu, Wang, Xiong, Yu, "Sequential Recommendation via Stochastic
Self-Attention", WWW 2022 (STOSA); Liu, Liu, Liu, "Pay Attention to Attention for
Sequential Recommendation", RecSys 2024 (the refinement of STOSAAWR).
"""

import numbers

import torch
import torch.nn.functional as F
from torch import nn
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_awrsr.errors import ConfigurationError, is_number
from recbole_awrsr.model.base import AttentionModelMixin
from recbole_awrsr.model.dropout import use_fast_dropout
from recbole_awrsr.model.refinement import (
    NoRefinement,
    Refinement,
    build_refinement,
    check_refinement_config,
)
from recbole_awrsr.model.targets import check_train_targets
from recbole_awrsr.model.wasserstein import (
    pairwise_squared_wasserstein,
    positive_variance,
    squared_wasserstein,
)
from recbole_awrsr.model.wasserstein_attention import WassersteinTransformerEncoder

NEGATIVES_FIX = "set train_neg_sample_args: {distribution: uniform, sample_num: 1}"


def _train_targets(config):
    """``train_targets`` with RecBole's behaviour (``last``) where the key is unset."""
    return config["train_targets"] or "last"


class STOSA(AttentionModelMixin, SequentialRecommender):
    """Stochastic self-attention sequential recommender.

    Config keys: ``n_layers``, ``n_heads``, ``hidden_size``, ``inner_size``,
    ``hidden_dropout_prob``, ``attn_dropout_prob``, ``hidden_act``, ``layer_norm_eps``,
    ``initializer_range``, ``pvn_weight``, ``stosa_propagate_mean``, ``loss_type``
    (BPR only), ``train_targets`` (last | all); see ``properties/model/STOSA.yaml``.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.read_transformer_keys(config)
        self.pvn_weight = config["pvn_weight"]
        self.train_targets = _train_targets(config)

        self.item_mean_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.item_cov_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_mean_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.position_cov_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.mean_LayerNorm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.cov_LayerNorm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        self.encoder = WassersteinTransformerEncoder(
            **self.encoder_keys(),
            refinement=self.build_refinement(config),
            propagate_mean=config["stosa_propagate_mean"] is not False,
        )
        self.apply(self._init_weights)
        use_fast_dropout(self)  # same dropout, a cheaper draw (model/dropout.py)

    def build_refinement(self, config):
        """The attention-weight mechanism of each layer: none (Ã = A) for plain STOSA."""
        return NoRefinement(config["MAX_ITEM_LIST_LENGTH"], self.n_heads)

    @classmethod
    def check_config(cls, config):
        """Reject settings this model cannot train with, before any data is loaded."""
        model = config["model"]
        pvn_weight = config["pvn_weight"]
        if not is_number(pvn_weight, numbers.Real) or not pvn_weight >= 0:
            raise ConfigurationError(
                f"pvn_weight must be a number >= 0 for {model}, got {pvn_weight!r}: it weighs "
                f"the hinge max(0, d(seq,pos) - d(pos,neg)); use 0 to switch it off."
            )
        if config["loss_type"] != "BPR":
            raise ConfigurationError(
                f"{model} trains with its BPR loss on Wasserstein distances only, got "
                f"loss_type '{config['loss_type']}': set loss_type: BPR."
            )
        if not isinstance(config["stosa_propagate_mean"], bool):
            raise ConfigurationError(
                f"stosa_propagate_mean must be true or false, got {config['stosa_propagate_mean']!r}."
            )
        if config["train_targets"] is not None:
            check_train_targets(config)
        negatives = config["train_neg_sample_args"] or {}
        if _train_targets(config) == "last" and negatives.get("distribution") in (None, "none", "None"):
            raise ConfigurationError(
                f"{model} needs one sampled negative per training row with train_targets: last "
                f"(its BPR loss compares the target with a negative), but train_neg_sample_args "
                f"switches negative sampling off: {NEGATIVES_FIX}."
            )

    def _init_weights(self, module):
        """Normal(0, initializer_range) for linear maps and embeddings, as in STOSA's code."""
        if isinstance(module, Refinement):
            module.reset_parameters(self.initializer_range)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def item_gaussians(self, items=None):
        """(mean, variance) of items: ids (...) -> two (..., d); all items (n_items, d) if None."""
        if items is None:
            return self.item_mean_embedding.weight, positive_variance(self.item_cov_embedding.weight)
        return self.item_mean_embedding(items), positive_variance(self.item_cov_embedding(items))

    def attention_layers(self):
        """The self-attention module of every layer, first to last."""
        return self.encoder.attention_layers()

    def embed(self, item_seq):
        """Input Gaussians of a sequence: (B, n) ids -> mean (B, n, d), variance (B, n, d)."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        mean = self.item_mean_embedding(item_seq) + self.position_mean_embedding(positions)
        cov = self.item_cov_embedding(item_seq) + self.position_cov_embedding(positions)
        mean = F.elu(self.dropout(self.mean_LayerNorm(mean)))
        cov = positive_variance(self.dropout(self.cov_LayerNorm(cov)))
        return mean, cov

    def encode(self, item_seq, read_from=None):
        """Output Gaussians at every position: (B, n) ids -> (mean (B, n, d), variance (B, n, d)).

        ``read_from`` is accepted for the shared contract; every position is computed.
        """
        return self.encode_layers(item_seq)[-1]

    def encode_layers(self, item_seq):
        """The (mean, variance) pair after each layer, first to last: a list of n_layers pairs."""
        mean, cov = self.embed(item_seq)
        return self.encoder(mean, cov, self.get_attention_mask(item_seq),
                            output_all_encoded_layers=True)

    def forward(self, item_seq, item_seq_len):
        """Output Gaussian at each sequence's last item: (B, n), (B,) -> two (B, d)."""
        mean, cov = self.encode(item_seq)
        last = item_seq_len - 1
        return self.gather_indexes(mean, last), self.gather_indexes(cov, last)

    def distance_loss(self, seq_mean, seq_cov, pos_items, neg_items):
        """BPR on distances plus the pvn hinge, averaged over targets.

        ``seq_mean, seq_cov`` (N, d); ``pos_items, neg_items`` (N,). Returns a scalar:
        mean(-log sigmoid(d(seq,neg) - d(seq,pos))) + pvn_weight * mean(max(0, d(seq,pos) - d(pos,neg))).
        """
        pos_mean, pos_cov = self.item_gaussians(pos_items)
        neg_mean, neg_cov = self.item_gaussians(neg_items)
        pos_dist = squared_wasserstein(seq_mean, seq_cov, pos_mean, pos_cov)
        neg_dist = squared_wasserstein(seq_mean, seq_cov, neg_mean, neg_cov)
        pos_neg_dist = squared_wasserstein(pos_mean, pos_cov, neg_mean, neg_cov)
        # logsigmoid rather than log(sigmoid(.)): finite for any distance gap
        bpr = -F.logsigmoid(neg_dist - pos_dist).mean()
        pvn = (pos_dist - pos_neg_dist).clamp_min(0.0).mean()
        return bpr + self.pvn_weight * pvn

    def calculate_loss(self, interaction):
        """Training loss of a batch; one encoder pass, then the targets ``train_targets`` names.

        ``last``: one target per row (``POS_ITEM_ID``) with RecBole's sampled negative.
        ``all``: a target at every real position of the window (the next item), one
        uniform negative each, averaged over all targets of the batch.
        """
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        mean, cov = self.encode(interaction[self.ITEM_SEQ])
        if self.train_targets == "all":
            targets, real, negatives = self.trained_targets(interaction, negatives=True)
            return self.distance_loss(mean[real], cov[real], targets[real], negatives[real])
        last = item_seq_len - 1
        return self.distance_loss(self.gather_indexes(mean, last), self.gather_indexes(cov, last),
                                  pos_items, interaction[self.NEG_ITEM_ID])

    def predict(self, interaction):
        """Score of one item per row: -W2^2(sequence, item), shape (B,)."""
        seq_mean, seq_cov = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        item_mean, item_cov = self.item_gaussians(interaction[self.ITEM_ID])
        return -squared_wasserstein(seq_mean, seq_cov, item_mean, item_cov)

    def full_sort_predict(self, interaction):
        """Scores of all items: -W2^2(sequence, item) for every item, shape (B, n_items)."""
        seq_mean, seq_cov = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        item_mean, item_cov = self.item_gaussians()
        return -pairwise_squared_wasserstein(seq_mean, seq_cov, item_mean, item_cov)


class STOSAAWR(STOSA):
    """STOSA with attention weight refinement in every layer.

    The refined weights Ã drive both streams (means with Ã, variances with Ã * Ã).
    Config keys (besides STOSA's): ``refine_mechanism`` (none | simple | value |
    additive | stochastic), ``refine_share_heads``, ``refine_input``, ``refine_init``, ``refine_temperature`` (see
    :mod:`recbole_awrsr.model.refinement`).
    ``none`` is the same model as :class:`STOSA`, with the same parameter names.
    """

    #: which refinement mechanisms apply (:func:`~recbole_awrsr.model.refinement.mechanisms_for`)
    backbone = "stosa"

    def build_refinement(self, config):
        return build_refinement(config, self.n_heads)

    @classmethod
    def check_config(cls, config):
        check_refinement_config(config, cls.backbone)
        super().check_config(config)
