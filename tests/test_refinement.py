"""The refinement mechanisms on their own: the read-out path and hand-computed values."""

import math

import pytest
import torch

from recbole_awrsr.model.refinement import MECHANISMS, pick

N, HEADS, BATCH = 7, 2, 5

#: the non-default settings of refine_input, refine_init and refine_temperature, one key
#: changed at a time (config overrides; the model-level property tests run each of them)
def attention_inputs(seed=0):
    """Causal, right-padded A, its masked logits and the additive mask, as a layer makes them."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([N, 4, 1, N, 6])
    real = torch.arange(N)[None, :] < lengths[:, None]  # (B, n)
    allowed = torch.tril(torch.ones(N, N, dtype=torch.bool)) & real[:, None, None, :]
    mask = torch.where(allowed, 0.0, -10000.0)  # (B, 1, n, n)
    scores = torch.randn(BATCH, HEADS, N, N, generator=generator) + mask
    return torch.softmax(scores, dim=-1), scores, mask


def mechanism(name, share_heads=True, refine_input="probs", seed=0, **choices):
    """A mechanism for n = N; ``choices``: refine_init and refine_temperature."""
    module = MECHANISMS[name](n=N, n_heads=HEADS, share_heads=share_heads,
                              refine_input=refine_input, **choices)
    torch.manual_seed(seed)
    module.reset_parameters(0.5)  # large weights: rows far from uniform, a sharper test
    return module


@pytest.mark.parametrize("choices", [{}, {"refine_init": "identity", "refine_temperature": "learned"}],
                         ids=["defaults", "identity-learned"])
@pytest.mark.parametrize("refine_input", ["probs", "scores", "centered", "rownorm"])
@pytest.mark.parametrize("share_heads", [True, False])
@pytest.mark.parametrize("name", list(MECHANISMS))
def test_read_out_rows_equal_the_full_matrix_rows(name, share_heads, refine_input, choices):
    probs, scores, mask = attention_inputs()
    module = mechanism(name, share_heads, refine_input, **choices)
    full = module(probs, scores, mask)
    at = torch.tensor([6, 3, 0, 2, 5])
    rows = module(probs, scores, mask, at=at)
    assert full.shape == (BATCH, HEADS, N, N)
    assert rows.shape == (BATCH, HEADS, 1, N)
    for b in range(BATCH):
        assert torch.allclose(rows[b, :, 0], full[b, :, at[b]], atol=1e-6), (name, b)


def test_pick_takes_one_row_per_sequence():
    matrices = torch.arange(2 * 3 * 4 * 4.0).view(2, 3, 4, 4)
    picked = pick(matrices, torch.tensor([1, 3]))
    assert picked.shape == (2, 3, 1, 4)
    assert torch.equal(picked[0, :, 0], matrices[0, :, 1])
    assert torch.equal(picked[1, :, 0], matrices[1, :, 3])
    assert pick(matrices, None) is matrices


def test_simple_follows_the_formula_by_hand():
    probs, scores, mask = attention_inputs(seed=3)
    module = mechanism("simple", seed=4)
    refined = module(probs, scores, mask)
    w_q, w_k = module.w_query, module.w_key
    for b in range(BATCH):
        for h in range(HEADS):
            a = probs[b, h]
            logits = (a @ w_q) @ (a @ w_k).T / math.sqrt(N) + mask[b, 0]
            assert torch.allclose(refined[b, h], torch.softmax(logits, -1), atol=1e-6)


def test_value_follows_the_formula_by_hand():
    probs, scores, mask = attention_inputs(seed=5)
    module = mechanism("value", seed=6)
    with torch.no_grad():
        module.w_value.add_(0.3 * torch.randn(N, N))  # away from the identity
    refined = module(probs, scores, mask)
    simple = mechanism("simple", seed=6)
    simple.load_state_dict({k: v for k, v in module.state_dict().items() if k != "w_value"})
    for b in range(BATCH):
        for h in range(HEADS):
            expected = simple(probs, scores, mask)[b, h] @ (probs[b, h] @ module.w_value)
            expected = expected.masked_fill(mask[b, 0] < 0, 0.0)
            assert torch.allclose(refined[b, h], expected, atol=1e-6)


def test_smooth_is_a_half_and_half_mix_with_the_uniform_row_by_hand():
    probs, scores, mask = attention_inputs(seed=7)
    module = mechanism("smooth")
    assert not list(module.parameters())  # a control: nothing to learn
    refined = module(probs, scores, mask)
    lengths = [N, 4, 1, N, 6]
    for b in range(BATCH):
        for i in range(N):
            # allowed keys of row i: the real items at or before i (padding rows see all real items up to i)
            allowed = min(i + 1, lengths[b])
            uniform = torch.zeros(N)
            uniform[:allowed] = 1.0 / allowed
            for h in range(HEADS):
                expected = 0.5 * probs[b, h, i] + 0.5 * uniform
                assert torch.allclose(refined[b, h, i], expected, atol=1e-6), (b, h, i)
    # a distribution over the same keys, and flatter than A (entropy of a mixture with uniform)
    assert torch.allclose(refined.sum(-1), torch.ones(BATCH, HEADS, N), atol=1e-5)
    assert torch.all(refined[mask.expand_as(refined) < 0] < 1e-4)
