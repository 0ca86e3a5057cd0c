"""SASRecAWR: equivalence with RecBole's SASRec, causality, parameter counts, learning."""

import pytest
import torch

from conftest import MAX_LEN, build, encoded, first_batch, loss_before_and_after_training, random_sequences

MECHANISMS = ["none", "simple", "value", "additive", "smooth"]


@pytest.fixture
def pair(tiny_config_dict):
    """RecBole's SASRec and SASRecAWR(none) on the same data, same seed."""
    _, stock, train_data, _, test_data = build("SASRec", config_dict=tiny_config_dict)
    _, ours, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict, refine_mechanism="none",
                             train_targets="last")
    return stock.eval(), ours.eval(), train_data, test_data


def test_none_has_sasrec_parameter_names_and_same_seeded_init(pair):
    stock, ours, _, _ = pair
    stock_state, our_state = stock.state_dict(), ours.state_dict()
    assert list(stock_state) == list(our_state)
    for name, tensor in stock_state.items():
        # same construction order: the same seed gives the same initial weights
        assert torch.equal(tensor, our_state[name]), name


def test_none_equals_sasrec_scores_and_loss(pair):
    stock, ours, train_data, test_data = pair
    with torch.no_grad():
        for p in stock.parameters():  # move away from the init so the check is not trivial
            p.add_(0.05 * torch.randn_like(p))
    ours.load_state_dict(stock.state_dict())
    batch = first_batch(train_data)
    test_batch = first_batch(test_data)
    with torch.no_grad():
        assert torch.allclose(stock.calculate_loss(batch), ours.calculate_loss(batch), atol=1e-5)
        stock_scores = stock.full_sort_predict(test_batch)
        our_scores = ours.full_sort_predict(test_batch)
    assert stock_scores.shape == (len(test_batch), stock.n_items)
    assert torch.allclose(stock_scores, our_scores, atol=1e-5)


# matrices per layer: written out, not read from the classes under test
EXPECTED_MATRICES = {"none": 0, "simple": 2, "value": 3, "additive": 2, "smooth": 0}


@pytest.mark.parametrize("share_heads", [True, False])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_mechanism_adds_exactly_its_matrices(tiny_config_dict, mechanism, share_heads):
    _, base, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict, refine_mechanism="none")
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict,
                              refine_mechanism=mechanism, refine_share_heads=share_heads)
    base_names = {name for name, _ in base.named_parameters()}
    extra = [(name, p) for name, p in model.named_parameters() if name not in base_names]
    n_layers, n_heads = 2, 2
    per_matrix = 1 if share_heads else n_heads
    shape = (MAX_LEN, MAX_LEN) if share_heads else (n_heads, MAX_LEN, MAX_LEN)
    assert len(extra) == EXPECTED_MATRICES[mechanism] * n_layers
    assert all(tuple(p.shape) == shape for _, p in extra)
    added = sum(p.numel() for _, p in extra)
    assert added == EXPECTED_MATRICES[mechanism] * n_layers * per_matrix * MAX_LEN * MAX_LEN
    assert {n for n, _ in model.named_parameters()} >= base_names


def test_value_starts_from_identity_and_is_causal(tiny_config_dict):
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict, refine_mechanism="value")
    attention = model.trm_encoder.attention_layers()[0]
    assert torch.equal(attention.refinement.w_value, torch.eye(MAX_LEN))
    attention.keep_weights = True
    seqs, _ = random_sequences(3, MAX_LEN, model.n_items, seed=3, min_len=MAX_LEN)
    encoded(model, seqs)
    refined = attention.refined_weights
    upper = torch.triu(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool), diagonal=1)
    assert torch.all(refined[..., upper] == 0)
    # identity W_v: simple(A) @ A is a product of row-stochastic causal matrices
    assert torch.allclose(refined.sum(-1), torch.ones_like(refined.sum(-1)), atol=1e-5)


@pytest.mark.parametrize("train_targets", ["last", "all"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_short_training_lowers_the_loss(tiny_config_dict, mechanism, train_targets):
    config, model, train_data, _, _ = build(
        "SASRecAWR", config_dict=tiny_config_dict, refine_mechanism=mechanism,
        hidden_dropout_prob=0.1, attn_dropout_prob=0.1, train_targets=train_targets,
    )
    before, after = loss_before_and_after_training(model, train_data, min_steps=30)
    assert after < 0.9 * before, (before, after)



def test_smooth_mixes_every_layer_with_uniform_weights_and_changes_the_scores(tiny_config_dict):
    """``smooth`` (no parameters of its own) on the same weights as ``none``: other scores, and
    in every layer refined weights that are (A + U) / 2 of that layer's own first-order A."""
    _, base, _, _, test_data = build("SASRecAWR", config_dict=tiny_config_dict, refine_mechanism="none")
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict, refine_mechanism="smooth")
    with torch.no_grad():  # sharper first-order weights: at the normal(0.02) start A is almost U
        for name, weight in base.named_parameters():
            if name.endswith(("query.weight", "key.weight")):
                weight.mul_(60.0)
    model.load_state_dict(base.state_dict())  # strict: the same parameter names, none added
    base.eval(), model.eval()
    batch = first_batch(test_data)
    with torch.no_grad():
        assert not torch.allclose(base.full_sort_predict(batch), model.full_sort_predict(batch), atol=1e-4)
    layers = model.trm_encoder.attention_layers()
    for attention in layers:
        attention.keep_weights = True
    seqs, _ = random_sequences(4, MAX_LEN, model.n_items, seed=5, min_len=3)
    encoded(model, seqs)
    causal = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))
    real = (seqs > 0)[:, None, None, :]
    allowed = (causal & real).float()  # (B, 1, n, n)
    uniform = allowed / allowed.sum(-1, keepdim=True).clamp(min=1)
    for attention in layers:
        first, refined = attention.first_order_weights, attention.refined_weights
        assert torch.allclose(refined, 0.5 * first + 0.5 * uniform, atol=1e-6)
