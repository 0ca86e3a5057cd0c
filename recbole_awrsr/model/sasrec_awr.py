"""SASRecAWR: RecBole's SASRec with attention weight refinement in every layer.

Liu, Liu, Liu, "Pay Attention to Attention for Sequential Recommendation", RecSys 2024.
"""

import torch
import torch.nn.functional as F
from torch import nn
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.attention import RefinedTransformerEncoder
from recbole_awrsr.model.cross_entropy import linear_cross_entropy
from recbole_awrsr.model.base import AttentionModelMixin
from recbole_awrsr.model.dropout import use_fast_dropout
from recbole_awrsr.model.refinement import (
    Refinement,
    build_refinement,
    check_refinement_config,
)
from recbole_awrsr.model.targets import (
    check_train_targets,
    sample_negatives,
)
from recbole_awrsr.model.trimming import (
    auto_groups,
    check_length_groups,
    length_groups,
    reassemble,
    select,
)

LOSS_TYPES = ("CE", "BPR")


class SASRecAWR(AttentionModelMixin, SASRec):
    """SASRec (post-LN transformer, learnable positions, right-padded input) plus refinement.

    Same modules, parameter names and construction order as RecBole's ``SASRec``;
    ``refine_mechanism: none`` is numerically the same model. Scoring, losses and
    ``predict``/``full_sort_predict`` are SASRec's.

    Config keys (besides SASRec's): ``refine_mechanism`` (none | simple | value |
    additive), ``refine_share_heads``, ``refine_input``, ``refine_init``, ``refine_temperature``
    (see :mod:`recbole_awrsr.model.refinement`),
    ``train_targets`` (last: RecBole's one target per prefix row; all: a target at
    every position of each user's windows, see :mod:`recbole_awrsr.model.targets`),
    ``train_stride``, ``length_groups`` (rows of a batch are run in this many groups
    of similar length, each cut to its longest row: padding costs nothing; unset:
    4 on a CPU, 1 on a GPU).
    """

    #: which refinement mechanisms apply (:func:`~recbole_awrsr.model.refinement.mechanisms_for`)
    backbone = "sasrec"

    def __init__(self, config, dataset):
        # SASRec.__init__ would build RecBole's encoder; the same modules are built
        # here in the same order, with the refined encoder in its place.
        SequentialRecommender.__init__(self, config, dataset)
        self.read_transformer_keys(config)
        self.loss_type = config["loss_type"]
        self.train_targets = config["train_targets"]
        self.length_groups = config["length_groups"]  # None: by device (trimming.AUTO_GROUPS)

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.trm_encoder = RefinedTransformerEncoder(
            **self.encoder_keys(),
            refinement=build_refinement(config, self.n_heads),
        )
        self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        self.loss_fct = BPRLoss() if self.loss_type == "BPR" else nn.CrossEntropyLoss()
        self.apply(self._init_weights)
        use_fast_dropout(self)  # same dropout, a cheaper draw (model/dropout.py)

    @classmethod
    def check_config(cls, config):
        """Reject settings this model cannot train with, before any data is loaded."""
        check_refinement_config(config, cls.backbone)
        check_train_targets(config)
        check_length_groups(config)
        if config["loss_type"] not in LOSS_TYPES:
            raise ConfigurationError(
                f"Unknown loss_type '{config['loss_type']}' for {config['model']}: use CE or BPR."
            )

    def _init_weights(self, module):
        if isinstance(module, Refinement):
            module.reset_parameters(self.initializer_range)
        else:
            super()._init_weights(module)

    def attention_layers(self):
        """The self-attention module of every layer, first to last."""
        return self.trm_encoder.attention_layers()

    def embed(self, item_seq):
        """Encoder input and attention mask: (B, n) item ids -> (B, n, d), (B, 1, n, n)."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)
        return self.dropout(self.LayerNorm(hidden)), self.get_attention_mask(item_seq)

    def _groups(self, item_seq_len):
        """Row groups cut to their longest row (:mod:`recbole_awrsr.model.trimming`).

        Whole, uncut batches while attention weights are being kept, so that the
        kept (B, h, n, n) matrices cover the batch.
        """
        if any(layer.keep_weights for layer in self.attention_layers()):
            return [(None, self.max_seq_length)]
        return length_groups(item_seq_len, auto_groups(self.length_groups, item_seq_len.device))

    def _embed_groups(self, item_seq, groups):
        """Per row group: its batch indices and :meth:`embed` of its rows cut to its length."""
        for rows, length in groups:
            yield (rows, *self.embed(select(item_seq, rows)[:, :length]))

    def encode(self, item_seq, read_from=None):
        """Hidden state at every position: (B, n) item ids -> ``(hidden,)``, hidden (B, n, d).

        Positions after a row's last item are padding: their values mean nothing
        (zero where the batch was cut short). ``read_from`` (B,): the first position
        whose output is read in each row; the last layer then skips the positions
        before it in every row of a group (they stay zero), as ``train_targets: all``
        reads only each window's last ``train_stride`` positions.
        """
        groups = self._groups((item_seq > 0).sum(1))
        parts = []
        for rows, hidden, mask in self._embed_groups(item_seq, groups):
            start = 0 if read_from is None else int(select(read_from, rows).min().clamp(min=0))
            if start == 0:
                out = self.trm_encoder(hidden, mask, output_all_encoded_layers=False)[-1]
            else:
                out = F.pad(self.trm_encoder.forward_at(hidden, mask, slice(start, None)),
                            (0, 0, start, 0))
            parts.append(out)
        return (reassemble(parts, groups, width=item_seq.size(1)),)

    def forward(self, item_seq, item_seq_len):
        """Hidden state at each sequence's last item: (B, n), (B,) -> (B, d).

        The same values as ``encode`` gathered at ``item_seq_len - 1``; the last layer
        only computes that position.
        """
        groups = self._groups(item_seq_len)
        parts = [self.trm_encoder.forward_at(hidden, mask, select(item_seq_len, rows) - 1)
                 for rows, hidden, mask in self._embed_groups(item_seq, groups)]
        return reassemble(parts, groups)

    def full_sort_predict(self, interaction):
        """Scores of all items, (B, |I|): SASRec's product, always in float32.

        Under bfloat16 autocast (``enable_amp``) the product would round scores of
        neighbouring items to the same value and let tie-breaking decide rankings.
        """
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        with torch.autocast(device_type=seq_output.device.type, enabled=False):
            return seq_output.float() @ self.item_embedding.weight.float().t()

    def calculate_loss(self, interaction):
        """Training loss of a batch: SASRec's (``last``) or averaged over every target (``all``)."""
        if self.train_targets == "last":
            return super().calculate_loss(interaction)
        targets, real = self.trained_targets(interaction)
        # only the trained positions are computed in the last layer and scored
        read_from = interaction[self.ITEM_SEQ_LEN] - self.train_stride
        (hidden,) = self.encode(interaction[self.ITEM_SEQ], read_from)
        hidden, positives = hidden[real], targets[real]  # (T, d), (T,)
        if self.loss_type == "CE":
            return linear_cross_entropy(hidden, self.item_embedding.weight, positives)
        negatives = sample_negatives(targets, self.n_items)[real]
        pos_score = (hidden * self.item_embedding(positives)).sum(-1)
        neg_score = (hidden * self.item_embedding(negatives)).sum(-1)
        return self.loss_fct(pos_score, neg_score)
