"""refine_input, refine_init and refine_temperature: formulas by hand, causality, gradients, config."""

import itertools
import math

import pytest
import torch

from conftest import MAX_LEN, VARIANTS, build, random_sequences, variant_id
from recbole_awrsr import Config
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.refinement import MECHANISMS
from test_refinement import BATCH, HEADS, N, attention_inputs, mechanism

INPUTS = ["probs", "scores", "centered", "rownorm"]
INITS = ["normal", "scaled", "identity"]
TEMPERATURES = ["fixed", "learned"]


def row_inputs(rows, allowed):
    """A (1, 1, r, c) probability matrix from ``rows`` and its mask from ``allowed`` (0/1 lists)."""
    probs = torch.tensor(rows, dtype=torch.float).view(1, 1, len(rows), -1)
    mask = torch.where(torch.tensor(allowed, dtype=torch.bool), 0.0, -10000.0).view(1, 1, len(rows), -1)
    return probs, probs.clone(), mask


def source(refine_input, probs, scores, mask):
    return mechanism("simple", refine_input=refine_input).source(probs, scores, mask)


# ---------------------------------------------------------------- inputs by hand

def test_centered_by_hand():
    probs, scores, mask = row_inputs(
        [[1.0, 0.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0], [0.0, 1.0, 0.0, 0.0]],
        [[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]],
    )
    expected = torch.tensor([[0.0, 0, 0, 0],  # one key: L A - 1 = 0
                             [0.5, -0.25, -0.25, 0],  # 3 * A - 1 on the three allowed keys
                             [-1.0, 2.0, -1.0, 0]])  # one-hot: L - 1 at the peak, -1 elsewhere
    assert torch.allclose(source("centered", probs, scores, mask)[0, 0], expected, atol=1e-6)


def test_centered_with_loops_on_a_causal_padded_batch():
    probs, scores, mask = attention_inputs(seed=1)
    x = source("centered", probs, scores, mask)
    for b, h, i in itertools.product(range(BATCH), range(HEADS), range(N)):
        allowed = [j for j in range(N) if mask[b, 0, i, j] == 0]
        for j in range(N):
            want = len(allowed) * probs[b, h, i, j].item() - 1 if j in allowed else 0.0
            assert abs(x[b, h, i, j].item() - want) < 1e-5, (b, h, i, j)


def test_rownorm_by_hand():
    probs, scores, mask = row_inputs([[0.5, 0.3, 0.2, 0.0], [1.0, 0.0, 0.0, 0.0]],
                                     [[1, 1, 1, 0], [1, 0, 0, 0]])
    mean = 1 / 3
    var = ((0.5 - mean) ** 2 + (0.3 - mean) ** 2 + (0.2 - mean) ** 2) / 3  # population variance
    first = [(a - mean) / math.sqrt(var + 1e-5) for a in (0.5, 0.3, 0.2)] + [0.0]
    expected = torch.tensor([first, [0.0, 0.0, 0.0, 0.0]])  # one allowed key: zeros
    assert torch.allclose(source("rownorm", probs, scores, mask)[0, 0], expected, atol=1e-6)


def test_rownorm_with_loops_uses_allowed_entries_only():
    probs, scores, mask = attention_inputs(seed=2)
    # junk on blocked entries must change nothing: the statistics skip them
    junk = probs + torch.rand(probs.shape) * (mask < 0)
    x = source("rownorm", junk, scores, mask)
    assert torch.equal(x, source("rownorm", probs, scores, mask))
    for b, h, i in itertools.product(range(BATCH), range(HEADS), range(N)):
        allowed = [j for j in range(N) if mask[b, 0, i, j] == 0]
        values = [probs[b, h, i, j].item() for j in allowed]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        for j in range(N):
            want = (probs[b, h, i, j].item() - mean) / math.sqrt(var + 1e-5) if j in allowed else 0.0
            assert abs(x[b, h, i, j].item() - want) < 1e-5, (b, h, i, j)
    # the row of a length-1 sequence (batch row 2) has one allowed key everywhere
    assert torch.all(x[2] == 0)


@pytest.mark.parametrize("refine_input", ["centered", "rownorm"])
def test_value_takes_its_values_from_a_with_normalised_inputs(refine_input):
    probs, scores, mask = attention_inputs(seed=5)
    module = mechanism("value", refine_input=refine_input, seed=6)
    with torch.no_grad():
        module.w_value.add_(0.3 * torch.randn(N, N))  # away from the identity
    refined = module(probs, scores, mask)
    higher = module.higher_order(module.source(probs, scores, mask), mask)
    for b, h in itertools.product(range(BATCH), range(HEADS)):
        expected = (higher[b, h] @ probs[b, h] @ module.w_value).masked_fill(mask[b, 0] < 0, 0.0)
        assert torch.allclose(refined[b, h], expected, atol=1e-6)
    # with W_v' = I (its init) Ã = simple(x) A: causal and row-stochastic
    start = mechanism("value", refine_input=refine_input)(probs, scores, mask)
    assert torch.allclose(start.sum(-1), torch.ones(BATCH, HEADS, N), atol=1e-5)


# ---------------------------------------------------------------- init and temperature

def test_scaled_init_has_std_one_over_sqrt_n():
    n = 400
    for name in ("simple", "value", "stochastic"):
        module = MECHANISMS[name](n=n, n_heads=2, refine_init="scaled")
        module.reset_parameters(0.02)
        for matrix in set(module.matrix_names) - {"w_value"}:
            std = getattr(module, matrix).std().item()
            assert abs(std - 1 / math.sqrt(n)) < 0.02 / math.sqrt(n), (name, matrix, std)
        if name == "value":
            assert torch.equal(module.w_value, torch.eye(n))


@pytest.mark.parametrize("share_heads", [True, False])
def test_identity_init_is_exact(share_heads):
    eye = torch.eye(N).expand(*(() if share_heads else (HEADS,)), N, N)
    for name in ("simple", "value", "additive"):
        module = mechanism(name, share_heads, refine_init="identity")
        for matrix in module.matrix_names:  # value's W_v' too
            assert torch.equal(getattr(module, matrix), eye), (name, matrix)
    stochastic = mechanism("stochastic", share_heads, refine_init="identity")
    assert torch.equal(stochastic.w_mean, eye)
    assert abs(stochastic.w_cov.std().item() - 0.5) < 0.2  # normal(0, initializer_range) as `normal`


def test_identity_init_refines_with_the_similarity_of_rows():
    probs, scores, mask = attention_inputs(seed=7)
    module = mechanism("simple", refine_input="rownorm", refine_init="identity")
    x = module.source(probs, scores, mask)
    expected = torch.softmax(x @ x.transpose(-1, -2) / math.sqrt(N) + mask, dim=-1)
    assert torch.allclose(module(probs, scores, mask), expected, atol=1e-6)


def test_refine_init_draws_the_same_random_numbers(tiny_config_dict):
    """The other weights of a model do not depend on refine_init."""
    states = [build("SASRecAWR", config_dict=tiny_config_dict, refine_init=init)[1].state_dict()
              for init in INITS]
    for name, tensor in states[0].items():
        if "refinement" not in name:
            assert all(torch.equal(tensor, state[name]) for state in states[1:]), name


#: mechanisms with no logits of their own to divide: written out, not read from the classes
PARAMETER_FREE = ("none", "smooth")


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_learned_temperature_exists_only_when_asked_and_starts_as_fixed(name):
    probs, scores, mask = attention_inputs(seed=8)
    fixed = mechanism(name, seed=9)
    learned = mechanism(name, seed=9, refine_temperature="learned")
    assert "log_temperature" not in dict(fixed.named_parameters())
    params = dict(learned.named_parameters())
    if name in PARAMETER_FREE:
        assert not params  # none and smooth add no parameter at all
    else:
        assert params["log_temperature"].shape == ()
        assert params["log_temperature"].item() == pytest.approx(math.log(math.sqrt(N)), abs=1e-7)
        assert set(params) - {"log_temperature"} == set(learned.matrix_names)
    assert torch.allclose(learned(probs, scores, mask), fixed(probs, scores, mask), atol=1e-6)
    if name not in PARAMETER_FREE:
        with torch.no_grad():
            learned.log_temperature.fill_(0.0)  # temperature 1: sharper than sqrt(n)
        assert not torch.allclose(learned(probs, scores, mask), fixed(probs, scores, mask), atol=1e-4)


@pytest.mark.parametrize("model_name", ["SASRecAWR", "STOSAAWR"])
def test_none_with_every_choice_adds_no_parameter(tiny_config_dict, model_name):
    names = {}
    for choices in [{}, {"refine_input": "rownorm", "refine_init": "identity",
                         "refine_temperature": "learned"}]:
        _, model, _, _, _ = build(model_name, config_dict=tiny_config_dict,
                                  refine_mechanism="none", **choices)
        names[len(choices)] = [name for name, _ in model.named_parameters()]
    assert names[0] == names[3]
    assert not any("refinement" in name for name in names[0])


# ---------------------------------------------------------------- causality and trimming, every setting

@pytest.mark.parametrize("share_heads", [True, False])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("refine_input", INPUTS)
@pytest.mark.parametrize("name", list(MECHANISMS))
def test_rows_before_l_depend_only_on_the_first_l_rows_and_keys(name, refine_input, init,
                                                                 temperature, share_heads):
    """Prefix consistency, no leakage and trimming at once, for every combination.

    Output rows < L from the (L, L) top-left block of the inputs (a batch trimmed to L)
    equal the full output's, whose entries at keys >= L are zero; and changing any
    input outside that block changes none of them.
    """
    probs, scores, mask = attention_inputs(seed=10)
    module = mechanism(name, share_heads, refine_input, refine_init=init,
                       refine_temperature=temperature)
    full = module(probs, scores, mask)
    for length in range(1, N):
        cut = module(probs[..., :length, :length], scores[..., :length, :length],
                     mask[..., :length, :length])
        assert torch.allclose(cut, full[..., :length, :length], atol=1e-6), length
        assert torch.all(full[..., :length, length:] == 0)
        # later rows (other attention patterns) and later keys changed: earlier rows keep
        changed_probs, changed_scores = probs.clone(), scores.clone()
        changed_probs[..., length:, :] = torch.softmax(torch.randn(N - length, N) + mask[..., length:, :], -1)
        changed_scores[..., length:, :] += torch.randn(N - length, N)
        changed = module(changed_probs, changed_scores, mask)
        assert torch.allclose(changed[..., :length, :], full[..., :length, :], atol=1e-6), length


STOSA_VARIANTS = [{}] + VARIANTS


@pytest.mark.parametrize("variant", STOSA_VARIANTS, ids=[variant_id(v) or "defaults" for v in STOSA_VARIANTS])
@pytest.mark.parametrize("mechanism_name", ["simple", "value", "additive", "stochastic"])
def test_stosa_cut_to_its_longest_row_equals_the_uncut_encoder(tiny_config_dict, mechanism_name,
                                                               variant):
    """STOSAAWR does not trim itself: a batch cut to L positions must still give the same outputs."""
    _, model, _, _, _ = build("STOSAAWR", config_dict=tiny_config_dict,
                              refine_mechanism=mechanism_name, **variant)
    with torch.no_grad():  # away from the near-uniform init, so the check is sharp
        for name, p in model.named_parameters():
            if "refinement" in name:
                p.add_(0.3 * torch.randn_like(p))
    model.eval()
    seqs, lengths = random_sequences(9, MAX_LEN - 3, model.n_items, seed=4, min_len=1)
    cut = int(lengths.max())
    with torch.no_grad():
        full_mean, full_cov = model.encode(torch.nn.functional.pad(seqs, (0, 3)))
        mean, cov = model.encode(seqs[:, :cut])
    for row, length in enumerate(lengths.tolist()):
        assert torch.allclose(mean[row, :length], full_mean[row, :length], atol=1e-5)
        assert torch.allclose(cov[row, :length], full_cov[row, :length], atol=1e-5)


# ---------------------------------------------------------------- gradients at init

GRADIENT_CASES = [("SASRecAWR", m) for m in ("simple", "value", "additive")] + \
                 [("STOSAAWR", m) for m in ("simple", "value", "additive", "stochastic")]


@pytest.mark.parametrize("variant", STOSA_VARIANTS, ids=[variant_id(v) or "defaults" for v in STOSA_VARIANTS])
@pytest.mark.parametrize("model_name,mechanism_name", GRADIENT_CASES)
def test_every_refinement_parameter_gets_a_gradient_at_init(tiny_config_dict, model_name,
                                                            mechanism_name, variant):
    _, model, train_data, _, _ = build(model_name, config_dict=tiny_config_dict,
                                       refine_mechanism=mechanism_name, **variant)
    batch = next(iter(train_data))
    model.train()
    model.calculate_loss(batch).backward()
    refinement = [(name, p) for name, p in model.named_parameters() if "refinement" in name]
    expected = len(MECHANISMS[mechanism_name].matrix_names) + ("refine_temperature" in variant)
    assert len(refinement) == expected * model.n_layers
    for name, p in refinement:
        assert p.grad is not None and p.grad.norm() > 0, name


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("model_name", ["SASRecAWR", "STOSAAWR"])
@pytest.mark.parametrize("key,value,allowed", [
    ("refine_input", "softmax", "probs, scores, centered, rownorm"),
    ("refine_init", "xavier", "normal, scaled, identity"),
    ("refine_temperature", "annealed", "fixed, learned"),
])
def test_unknown_choice_fails_before_training(tiny_config_dict, model_name, key, value, allowed):
    with pytest.raises(ConfigurationError, match=f"{key} '{value}'.*{allowed}"):
        Config(model=model_name, dataset="tiny", config_dict={**tiny_config_dict, key: value})


@pytest.mark.parametrize("model_name", ["SASRecAWR", "STOSAAWR"])
def test_defaults_are_todays_behaviour(model_name):
    config = Config(model=model_name, dataset="ml-100k")
    assert (config["refine_input"], config["refine_init"], config["refine_temperature"]) == \
        ("probs", "normal", "fixed")
