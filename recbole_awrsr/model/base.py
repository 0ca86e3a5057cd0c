"""What the plugin's sequential models share: attention layers, ``encode``, all-targets training.

The paper this plugin implements: Liu, Liu, Liu, "Pay Attention to Attention for
Sequential Recommendation", RecSys 2024 (arXiv 2410.21048).
"""

from recbole_awrsr.model.targets import next_item_targets, sample_negatives, train_stride


class AttentionModelMixin:
    """The contract of SASRecAWR, STOSA and STOSAAWR, put in front of RecBole's base class.

    * :meth:`attention_layers`: every layer's self-attention module, first to last; each
      keeps its last call's first-order and refined weights when ``keep_weights`` is set
      (analysis, sharpness).
    * ``encode(item_seq, read_from=None)``: the model's state at every position of
      right-padded sequences (B, n): one (B, n, d) tensor per stream, as a tuple
      (``(hidden,)`` for SASRecAWR, ``(mean, variance)`` for STOSA).
    * ``train_targets: all`` (:mod:`recbole_awrsr.model.targets`): :meth:`trained_targets`
      gives the targets of a batch's trained positions, the same for every model.
    """

    #: ``calculate_loss`` trains on every position of a window with ``train_targets: all``
    handles_all_targets = True

    #: the keyword arguments of RecBole's ``TransformerEncoder``, which both backbones'
    #: encoders take, under RecBole's SASRec names
    ENCODER_KEYS = ("n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob",
                    "attn_dropout_prob", "hidden_act", "layer_norm_eps")
    #: the transformer keys both backbones read: the encoder's and the weights' init
    TRANSFORMER_KEYS = ENCODER_KEYS + ("initializer_range",)

    def read_transformer_keys(self, config):
        """Set each of :data:`TRANSFORMER_KEYS` as an attribute of the same name, and
        ``train_stride`` (the positions each kept window trains with ``train_targets: all``)."""
        for key in self.TRANSFORMER_KEYS:
            setattr(self, key, config[key])
        self.train_stride = train_stride(config)

    def encoder_keys(self):
        """:data:`ENCODER_KEYS` and their values as read, for the backbone's encoder."""
        return {key: getattr(self, key) for key in self.ENCODER_KEYS}

    def attention_layers(self):
        """The self-attention module of every layer, first to last."""
        raise NotImplementedError

    def trained_targets(self, interaction, negatives=False):
        """The targets of a batch's trained positions under ``train_targets: all``.

        Returns ``(targets, real)``: (B, n) next item at each trained position (0
        elsewhere) and the (B, n) bool mask of those positions; with ``negatives`` also
        (B, n) uniform negatives, one per target, drawn from the global generator.
        """
        targets = next_item_targets(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                                    interaction[self.POS_ITEM_ID], self.train_stride)
        real = targets > 0
        if negatives:
            return targets, real, sample_negatives(targets, self.n_items)
        return targets, real
