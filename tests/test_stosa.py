"""STOSA and STOSAAWR: Gaussians, scoring, equivalences, causality, losses, configuration."""

import math

import pytest
import torch
from recbole.data.interaction import Interaction

from conftest import MAX_LEN, build, encoded, first_batch, loss_before_and_after_training, random_sequences
from recbole_awrsr import Config, run_recbole_awrsr
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.targets import next_item_targets, sample_negatives

MECHANISMS = ["none", "simple", "value", "additive", "smooth", "stochastic"]


pytestmark = pytest.mark.usefixtures("one_thread")


def inverse_positive_variance(var):
    """Pre-activation x with ELU(x) + 1 == var (var > 0)."""
    return torch.where(var > 1, var - 1, var.log())


@pytest.fixture
def stosa_config(tiny_config_dict):
    # dropout on, so that train-mode checks see it; eval-mode checks switch it off.
    # RecBole's one target per row unless a test asks for `all` (whose negatives are random)
    return {**tiny_config_dict, "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.1,
            "train_targets": "last"}


# ---------------------------------------------------------------- Gaussians stay valid

@pytest.mark.parametrize("model_name,mechanism", [("STOSA", None), ("STOSAAWR", "stochastic"),
                                                   ("STOSAAWR", "value")])
def test_covariances_strictly_positive_through_every_layer(stosa_config, model_name, mechanism):
    extra = {"refine_mechanism": mechanism} if mechanism else {}
    _, model, _, _, _ = build(model_name, config_dict=stosa_config, n_layers=3, **extra)
    with torch.no_grad():  # push the covariance pre-activations to both extremes
        model.item_cov_embedding.weight.mul_(0).add_(torch.randn_like(model.item_cov_embedding.weight) * 1e4)
    seqs, _ = random_sequences(6, MAX_LEN, model.n_items, seed=0)
    model.train()  # dropout on: a dropped attention row must not zero a variance either
    with torch.no_grad():
        _, input_cov = model.embed(seqs)
        layers = model.encode_layers(seqs)
        _, item_cov = model.item_gaussians()
    assert len(layers) == 3
    assert torch.all(input_cov > 0) and torch.all(item_cov > 0)
    for mean, cov in layers:
        assert torch.all(cov > 0)
        assert torch.isfinite(mean).all() and torch.isfinite(cov).all()


@pytest.mark.parametrize("scale", [1e8, 1e-8])
@pytest.mark.parametrize("model_name,mechanism", [("STOSA", None), ("STOSAAWR", "stochastic"),
                                                   ("STOSAAWR", "additive")])
def test_training_step_with_extreme_embeddings_is_finite(stosa_config, model_name, mechanism, scale):
    extra = {"refine_mechanism": mechanism} if mechanism else {}
    _, model, train_data, _, test_data = build(model_name, config_dict=stosa_config, **extra)
    with torch.no_grad():
        for emb in (model.item_mean_embedding, model.position_mean_embedding):
            emb.weight.copy_(torch.randn_like(emb.weight) * scale)
        for emb in (model.item_cov_embedding, model.position_cov_embedding):
            # covariance pre-activations far negative and far positive
            emb.weight.copy_(torch.randn_like(emb.weight).sign() * max(scale, 1e-8) * 1e-4
                             + torch.randn_like(emb.weight) * scale)
    model.train()
    loss = model.calculate_loss(first_batch(train_data))
    loss.backward()
    assert torch.isfinite(loss)
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(first_batch(test_data))
    assert torch.isfinite(scores).all()


def test_embedding_and_attention_layer_follow_the_formulas(stosa_config):
    """One layer written out by hand (dropout off): inputs, W2 logits, A and A*A, residual + LN."""
    import torch.nn.functional as F

    _, model, _, _, _ = build("STOSA", config_dict=stosa_config, n_layers=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    seqs, _ = random_sequences(3, MAX_LEN, model.n_items, seed=9)
    pos = torch.arange(MAX_LEN)
    with torch.no_grad():
        mean_in = F.elu(model.mean_LayerNorm(model.item_mean_embedding(seqs)
                                             + model.position_mean_embedding(pos)))
        cov_in = F.elu(model.cov_LayerNorm(model.item_cov_embedding(seqs)
                                           + model.position_cov_embedding(pos))) + 1
        got_mean, got_cov = model.embed(seqs)
        assert torch.allclose(got_mean, mean_in, atol=1e-6)
        assert torch.allclose(got_cov, cov_in, atol=1e-6)

        att = model.encoder.layer[0].multi_head_attention
        h, dh = model.n_heads, model.hidden_size // model.n_heads
        mask = model.get_attention_mask(seqs)
        expected_mean = torch.zeros_like(mean_in)
        expected_cov = torch.zeros_like(cov_in)
        for b in range(3):
            for head in range(h):
                cols = slice(head * dh, (head + 1) * dh)
                mq, mk, mv = (f(mean_in[b])[:, cols] for f in (att.mean_query, att.mean_key, att.mean_value))
                sq, sk, sv = (F.elu(f(cov_in[b])[:, cols]) + 1 for f in (att.cov_query, att.cov_key, att.cov_value))
                logits = torch.zeros(MAX_LEN, MAX_LEN)
                for i in range(MAX_LEN):
                    for j in range(MAX_LEN):
                        w2 = ((mq[i] - mk[j]) ** 2).sum() + ((sq[i].sqrt() - sk[j].sqrt()) ** 2).sum()
                        logits[i, j] = -w2 / dh ** 0.5
                a = torch.softmax(logits + mask[b, 0], dim=-1)
                expected_mean[b, :, cols] = a @ mv
                expected_cov[b, :, cols] = (a * a) @ sv
        expected_mean = att.mean_LayerNorm(att.mean_dense(expected_mean) + mean_in)
        expected_cov = att.cov_LayerNorm(att.cov_dense(expected_cov) + cov_in)
        got_mean, got_cov = att(mean_in, cov_in, mask)
    assert torch.allclose(got_mean, expected_mean, atol=1e-4)
    assert torch.allclose(got_cov, expected_cov, atol=1e-4)
    layer = model.encoder.layer[0]
    assert layer.mean_feed_forward.intermediate_act_fn is F.elu  # STOSA's activation by default
    with torch.no_grad():
        out_mean, out_cov = model.encode(seqs)
        assert torch.allclose(out_mean, layer.mean_feed_forward(got_mean), atol=1e-5)
        assert torch.allclose(out_cov, F.elu(layer.cov_feed_forward(got_cov)) + 1, atol=1e-5)


# ---------------------------------------------------------------- scoring

def test_full_sort_ranks_the_nearest_gaussian_first(stosa_config):
    _, model, _, _, _ = build("STOSA", config_dict=stosa_config)
    n_seq = 5
    # sequences use items 1..10 only; item 11 + b gets row b's output Gaussian
    gen = torch.Generator().manual_seed(3)
    seqs = torch.randint(1, 11, (n_seq, MAX_LEN), generator=gen)
    lengths = torch.tensor([1, 3, 5, 8, 8])
    seqs = seqs.masked_fill(torch.arange(MAX_LEN) >= lengths.unsqueeze(1), 0)
    model.eval()
    with torch.no_grad():
        seq_mean, seq_cov = model(seqs, lengths)
        targets = torch.arange(11, 11 + n_seq)
        model.item_mean_embedding.weight[targets] = seq_mean
        model.item_cov_embedding.weight[targets] = inverse_positive_variance(seq_cov)
        interaction = Interaction({model.ITEM_SEQ: seqs, model.ITEM_SEQ_LEN: lengths})
        scores = model.full_sort_predict(interaction)
    assert scores.shape == (n_seq, model.n_items)
    assert torch.equal(scores.argmax(dim=1), targets)
    assert torch.all(scores <= 0)  # minus a distance
    assert torch.allclose(scores[torch.arange(n_seq), targets], torch.zeros(n_seq), atol=1e-4)


def test_predict_agrees_with_full_sort_predict(stosa_config):
    _, model, _, _, test_data = build("STOSAAWR", config_dict=stosa_config, refine_mechanism="simple")
    batch = first_batch(test_data)
    model.eval()
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        for item in (1, 7, model.n_items - 1):
            batch[model.ITEM_ID] = torch.full((len(batch),), item)
            single = model.predict(batch)
            assert single.shape == (len(batch),)
            assert torch.allclose(single, full[:, item], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- equivalences

def test_stosaawr_none_equals_stosa(stosa_config):
    _, stosa, train_data, _, test_data = build("STOSA", config_dict=stosa_config)
    _, awr, _, _, _ = build("STOSAAWR", config_dict=stosa_config, refine_mechanism="none")
    assert list(stosa.state_dict()) == list(awr.state_dict())
    for name, tensor in stosa.state_dict().items():  # same construction order, same seeded init
        assert torch.equal(tensor, awr.state_dict()[name]), name
    with torch.no_grad():
        for p in stosa.parameters():  # move away from the init so the check is not trivial
            p.add_(0.1 * torch.randn_like(p))
    awr.load_state_dict(stosa.state_dict())
    stosa.eval(), awr.eval()
    batch, test_batch = first_batch(train_data), first_batch(test_data)
    with torch.no_grad():
        assert torch.allclose(stosa.calculate_loss(batch), awr.calculate_loss(batch), atol=1e-6)
        assert torch.allclose(stosa.full_sort_predict(test_batch), awr.full_sort_predict(test_batch),
                              atol=1e-5)


@pytest.mark.parametrize("propagate", [False, True])
def test_propagate_mean_switch(stosa_config, propagate):
    _, model, _, _, _ = build("STOSA", config_dict=stosa_config, n_layers=2,
                              stosa_propagate_mean=propagate)
    seqs, _ = random_sequences(4, MAX_LEN, model.n_items, seed=4)
    model.eval()
    with torch.no_grad():
        in_mean, in_cov = model.embed(seqs)
        layers = model.encode_layers(seqs)
    out_mean, out_cov = layers[-1]
    assert not torch.allclose(out_cov, in_cov)  # the cov stream always propagates
    if propagate:
        assert not torch.allclose(out_mean, in_mean)
    else:  # the reference code's behaviour: the mean stream leaves as it entered
        for mean, _ in layers:
            assert torch.equal(mean, in_mean)


def test_kept_weights_are_causal_and_row_stochastic(stosa_config):
    _, model, _, _, _ = build("STOSAAWR", config_dict=stosa_config, refine_mechanism="stochastic")
    attention = model.encoder.attention_layers()[0]
    attention.keep_weights = True
    seqs, _ = random_sequences(3, MAX_LEN, model.n_items, seed=3, min_len=MAX_LEN)
    encoded(model, seqs)
    upper = torch.triu(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool), diagonal=1)
    for weights in (attention.first_order_weights, attention.refined_weights):
        assert weights.shape == (3, model.n_heads, MAX_LEN, MAX_LEN)
        assert torch.all(weights[..., upper] == 0)
        assert torch.allclose(weights.sum(-1), torch.ones(3, model.n_heads, MAX_LEN), atol=1e-5)
    assert not torch.allclose(attention.first_order_weights, attention.refined_weights)


# ---------------------------------------------------------------- losses and training

def test_loss_matches_the_formula(stosa_config):
    _, model, train_data, _, _ = build("STOSA", config_dict=stosa_config, pvn_weight=0.5)
    batch = first_batch(train_data)
    model.eval()
    with torch.no_grad():
        seq_mean, seq_cov = model(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        gaussian = lambda ids: (model.item_mean_embedding.weight[ids],  # noqa: E731
                                torch.nn.functional.elu(model.item_cov_embedding.weight[ids]) + 1)

        def dist(m1, v1, m2, v2):
            return ((m1 - m2) ** 2).sum(-1) + ((v1.sqrt() - v2.sqrt()) ** 2).sum(-1)

        pos, neg = gaussian(batch[model.POS_ITEM_ID]), gaussian(batch[model.NEG_ITEM_ID])
        d_pos, d_neg = dist(seq_mean, seq_cov, *pos), dist(seq_mean, seq_cov, *neg)
        d_pn = dist(*pos, *neg)
        expected = (-torch.log(torch.sigmoid(d_neg - d_pos))).mean() \
            + 0.5 * torch.clamp(d_pos - d_pn, min=0).mean()
        assert torch.allclose(model.calculate_loss(batch), expected, rtol=1e-5)


def test_all_targets_loss_is_the_mean_of_prefix_losses(stosa_config):
    _, model, _, _, _ = build("STOSAAWR", config_dict=stosa_config, refine_mechanism="additive",
                              train_targets="all", train_stride=MAX_LEN)
    assert model.train_targets == "all"
    seqs = torch.tensor([[3, 5, 7, 9, 11, 0, 0, 0], [2, 4, 6, 8, 10, 12, 14, 16]])
    lengths = torch.tensor([5, 8])
    pos_items = torch.tensor([13, 18])
    window = Interaction({model.ITEM_SEQ: seqs, model.ITEM_SEQ_LEN: lengths,
                          model.POS_ITEM_ID: pos_items})
    targets = next_item_targets(seqs, lengths, pos_items)
    torch.manual_seed(11)
    negatives = sample_negatives(targets, model.n_items)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(11)  # the model draws the same negatives
        loss_all = model.calculate_loss(window)
        # RecBole's rows: one per prefix, its target and a fixed negative
        rows = [(b, k) for b in range(2) for k in range(int(lengths[b]))]
        prefixes = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
        for r, (b, k) in enumerate(rows):
            prefixes[r, :k + 1] = seqs[b, :k + 1]
        prefix_rows = Interaction({
            model.ITEM_SEQ: prefixes,
            model.ITEM_SEQ_LEN: torch.tensor([k + 1 for _, k in rows]),
            model.POS_ITEM_ID: torch.stack([targets[b, k] for b, k in rows]),
            model.NEG_ITEM_ID: torch.stack([negatives[b, k] for b, k in rows]),
        })
        model.train_targets = "last"
        loss_last = model.calculate_loss(prefix_rows)
        # the last prefix of each user is the window's own RecBole row
        assert torch.equal(prefix_rows[model.POS_ITEM_ID][[4, 12]], pos_items)
    assert torch.allclose(loss_all, loss_last, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mechanism", [None] + MECHANISMS[1:])
def test_short_training_lowers_the_loss(stosa_config, mechanism):
    model_name, extra = ("STOSA", {}) if mechanism is None else ("STOSAAWR", {"refine_mechanism": mechanism})
    _, model, train_data, _, _ = build(model_name, config_dict=stosa_config, **extra)
    before, after = loss_before_and_after_training(model, train_data, min_steps=6 * len(train_data))
    assert math.isfinite(after)
    assert after < 0.8 * before, (before, after)


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("model_name,overrides,message", [
    ("STOSA", {"pvn_weight": -0.1}, "pvn_weight"),
    ("STOSAAWR", {"pvn_weight": -1}, "pvn_weight"),
    ("STOSA", {"train_neg_sample_args": None, "train_targets": "last"}, "train_neg_sample_args"),
    ("STOSAAWR", {"train_neg_sample_args": {"distribution": None, "sample_num": 1},
                  "train_targets": "last"}, "train_neg_sample_args"),
    ("STOSA", {"loss_type": "CE"}, "loss_type: BPR"),
    ("STOSAAWR", {"refine_mechanism": "triple"}, "refine_mechanism"),
    ("STOSAAWR", {"train_targets": "some"}, "train_targets"),
    ("STOSA", {"stosa_propagate_mean": "yes"}, "stosa_propagate_mean"),
    ("SASRecAWR", {"refine_mechanism": "stochastic"}, "STOSAAWR"),
])
def test_bad_configs_fail_before_training(tiny_config_dict, model_name, overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        Config(model=model_name, dataset="tiny", config_dict={**tiny_config_dict, **overrides})


def test_defaults_are_the_reference_beauty_ones():
    config = Config(model="STOSAAWR", dataset="ml-100k")
    expected = {"hidden_size": 64, "n_layers": 1, "n_heads": 4, "hidden_dropout_prob": 0.3,
                "attn_dropout_prob": 0.0, "pvn_weight": 0.005, "learning_rate": 1e-3,
                "train_batch_size": 256, "loss_type": "BPR",
                "stosa_propagate_mean": True}
    assert {key: config[key] for key in expected} == expected
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert config["train_neg_sample_args"]["sample_num"] == 1
    # the window is the dataset's, the same for every model compared on it
    assert config["MAX_ITEM_LIST_LENGTH"] == Config(model="SASRecAWR", dataset="ml-100k")["MAX_ITEM_LIST_LENGTH"]


def test_all_targets_needs_no_recbole_negatives(tiny_config_dict):
    config = Config(model="STOSA", dataset="tiny",
                    config_dict={**tiny_config_dict, "train_targets": "all",
                                 "train_neg_sample_args": None})
    assert config["train_targets"] == "all"


# ---------------------------------------------------------------- end to end

def test_end_to_end_stochastic(tiny_config_dict):
    result = run_recbole_awrsr("STOSAAWR", "tiny",
                               config_dict={**tiny_config_dict, "refine_mechanism": "stochastic"})
    metrics = result["test_result"]
    assert {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10"} <= set(metrics)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert result["best_valid_result"] is not None
