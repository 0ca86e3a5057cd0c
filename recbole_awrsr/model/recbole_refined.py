"""Refinement inside RecBole's own transformer models, without copying them.

RecBole's BERT4Rec, SASRecF, FDSA, CORE (``dnn_type: trm``), GCSAN and SASRecCPR
all run ``recbole.model.layers.TransformerEncoder``, whose layers call one
``MultiHeadAttention``. After RecBole builds such a model, every one of those
attention modules is replaced by :class:`~recbole_awrsr.model.attention.RefinedMultiHeadAttention`
with the same parameters (same names, same values) plus a refinement mechanism
from :mod:`recbole_awrsr.model.refinement`. The model's own attention mask is what
the mechanism re-applies: causal for the SASRec-like models, bidirectional with
padding blocked for BERT4Rec. With ``refine_mechanism: none`` the model is RecBole's
(same parameter names, same outputs for the same weights, same random draws).

Not refinable here: S3Rec (its pre-training stage trains and saves the encoder
under a different protocol), LightSANs (its own low-rank attention) and FEARec (its
own frequency-domain attention): their attention is not ``MultiHeadAttention``.

The class names follow RecBole's convention of one class per model, with ``AWR``
appended; their YAML defaults are RecBole's for the base model, then
``properties/model/RefinedRecBoleModel.yaml`` (the refinement keys).
"""

import torch
from recbole.model.layers import MultiHeadAttention, TransformerLayer
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from recbole.model.sequential_recommender.core import CORE
from recbole.model.sequential_recommender.fdsa import FDSA
from recbole.model.sequential_recommender.gcsan import GCSAN
from recbole.model.sequential_recommender.sasreccpr import SASRecCPR
from recbole.model.sequential_recommender.sasrecf import SASRecF

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.attention import RefinedMultiHeadAttention
from recbole_awrsr.model.refinement import build_refinement, check_refinement_config


def encoder_length(model):
    """The longest sequence the model's encoders see: the n of the n x n matrices.

    The largest of ``max_seq_length`` and every position embedding's size (a model
    that adds a token gets a longer table); a refinement cuts its matrices to the
    length of each batch, so a larger n only costs parameters.
    """
    sizes = [model.max_seq_length]
    sizes += [module.num_embeddings for name, module in model.named_modules()
              if name.split(".")[-1] == "position_embedding"]
    return max(sizes)


def refined_attention(original, refinement):
    """A :class:`RefinedMultiHeadAttention` with ``original``'s sizes, dropout and weights.

    Built with the random state forked off, so that replacing a module draws nothing
    (a ``none`` model keeps RecBole's random stream).
    """
    with torch.random.fork_rng(devices=[]):
        module = RefinedMultiHeadAttention(
            original.num_attention_heads, original.all_head_size, original.out_dropout.p,
            original.attn_dropout.p, original.LayerNorm.eps, refinement)
    module.load_state_dict(original.state_dict(), strict=False)
    module.train(original.training)
    return module


def refine_transformers(model, config):
    """Replace every ``MultiHeadAttention`` of the model's transformer layers, in place.

    Each layer gets its own mechanism (``refine_mechanism`` and the other refinement
    keys of ``config``), its matrices initialised normal(0, ``initializer_range``) or as
    ``refine_init`` says. Returns the new attention modules, first to last.
    """
    n = encoder_length(model)
    replaced = []
    for layer in model.modules():
        if isinstance(layer, TransformerLayer) and type(layer.multi_head_attention) is MultiHeadAttention:
            original = layer.multi_head_attention
            refinement = build_refinement(config, original.num_attention_heads, n=n)
            refinement.reset_parameters(config["initializer_range"])
            layer.multi_head_attention = refined_attention(original, refinement)
            replaced.append(layer.multi_head_attention)
    if not replaced:
        raise ConfigurationError(f"{config['model']} has no RecBole MultiHeadAttention to refine.")
    return replaced


class RefinedRecBoleModel:
    """Put in front of a RecBole transformer model: the same model, attention refined.

    Declares the dot-product backbone's mechanisms (none, simple, value, additive)
    and the models' shared ``attention_layers()``.
    """

    #: which refinement mechanisms apply (:func:`~recbole_awrsr.model.refinement.mechanisms_for`)
    backbone = "sasrec"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self._refined = refine_transformers(self, config)

    @classmethod
    def check_config(cls, config):
        """Reject refinement keys this model cannot use, before any data is loaded."""
        check_refinement_config(config, cls.backbone)

    def attention_layers(self):
        """The refined self-attention module of every transformer layer, first to last."""
        return list(self._refined)


class BERT4RecAWR(RefinedRecBoleModel, BERT4Rec):
    """RecBole's BERT4Rec (bidirectional, masked-item training) with refined attention."""


class SASRecFAWR(RefinedRecBoleModel, SASRecF):
    """RecBole's SASRecF (SASRec over item and feature embeddings) with refined attention."""


class FDSAAWR(RefinedRecBoleModel, FDSA):
    """RecBole's FDSA (item and feature transformers) with refined attention in both."""


class GCSANAWR(RefinedRecBoleModel, GCSAN):
    """RecBole's GCSAN (session graph, then self-attention) with refined attention."""


class SASRecCPRAWR(RefinedRecBoleModel, SASRecCPR):
    """RecBole's SASRecCPR (SASRec with the cross-pairwise ranking loss) with refined attention."""


class COREAWR(RefinedRecBoleModel, CORE):
    """RecBole's CORE in transformer mode (``dnn_type: trm``) with refined attention."""

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["dnn_type"] != "trm":
            raise ConfigurationError(
                f"COREAWR refines CORE's transformer, but dnn_type is '{config['dnn_type']}': "
                f"set dnn_type: trm (ave has no attention to refine), or use CORE."
            )


#: the refined RecBole models, by name
REFINED_RECBOLE_MODELS = {cls.__name__: cls for cls in (
    BERT4RecAWR, SASRecFAWR, FDSAAWR, COREAWR, GCSANAWR, SASRecCPRAWR)}
