"""The squared 2-Wasserstein distance and the positive variance map."""

import pytest
import torch

from recbole_awrsr.model.wasserstein import (
    VARIANCE_FLOOR,
    pairwise_squared_wasserstein,
    positive_variance,
    squared_wasserstein,
)


def gaussians(*shape, seed=0, dtype=torch.float64):
    """Random means and strictly positive variances of shape ``shape``."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(*shape, generator=gen, dtype=dtype) * 2.0
    var = torch.rand(*shape, generator=gen, dtype=dtype) * 3.0 + 0.01
    return mean, var


def direct(mu1, var1, mu2, var2):
    """The textbook formula, written out independently of the module under test."""
    return ((mu1 - mu2) ** 2).sum(-1) + ((var1 ** 0.5 - var2 ** 0.5) ** 2).sum(-1)


def test_matching_pairs_equal_the_formula():
    mu1, var1 = gaussians(5, 7, 16, seed=1)
    mu2, var2 = gaussians(5, 7, 16, seed=2)
    out = squared_wasserstein(mu1, var1, mu2, var2)
    assert out.shape == (5, 7)
    assert torch.allclose(out, direct(mu1, var1, mu2, var2), rtol=1e-12, atol=1e-12)


def test_one_dimension_by_hand():
    # N(1, 4) vs N(-2, 1): (1 - -2)^2 + (2 - 1)^2 = 10
    out = squared_wasserstein(torch.tensor([1.0]), torch.tensor([4.0]),
                              torch.tensor([-2.0]), torch.tensor([1.0]))
    assert out.item() == pytest.approx(10.0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-3)])
def test_matrix_form_equals_the_formula(dtype, tol):
    # batched (B, h, n, d) x (B, h, m, d), as the attention calls it
    mu1, var1 = gaussians(3, 2, 6, 8, seed=3, dtype=dtype)
    mu2, var2 = gaussians(3, 2, 5, 8, seed=4, dtype=dtype)
    out = pairwise_squared_wasserstein(mu1, var1, mu2, var2)
    assert out.shape == (3, 2, 6, 5)
    expected = direct(mu1.unsqueeze(-2), var1.unsqueeze(-2), mu2.unsqueeze(-3), var2.unsqueeze(-3))
    assert torch.allclose(out, expected, rtol=tol, atol=tol)
    # the matching-pairs function on broadcast inputs agrees too
    assert torch.allclose(
        squared_wasserstein(mu1.unsqueeze(-2), var1.unsqueeze(-2), mu2.unsqueeze(-3), var2.unsqueeze(-3)),
        expected, rtol=tol, atol=tol,
    )


def test_matrix_form_unbatched_sequence_against_items():
    # (B, d) x (I, d) -> (B, I), as full_sort_predict calls it
    mu1, var1 = gaussians(4, 8, seed=5)
    mu2, var2 = gaussians(9, 8, seed=6)
    out = pairwise_squared_wasserstein(mu1, var1, mu2, var2)
    for b in range(4):
        for i in range(9):
            assert out[b, i].item() == pytest.approx(direct(mu1[b], var1[b], mu2[i], var2[i]).item())


def test_zero_for_identical_symmetric_and_never_negative():
    mu, var = gaussians(2, 10, 32, seed=7, dtype=torch.float32)
    mu = mu * 100.0  # large norms: the matrix form's cancellation is at its worst
    dist = pairwise_squared_wasserstein(mu, var, mu, var)
    diagonal = dist.diagonal(dim1=-2, dim2=-1)
    scale = (mu.pow(2).sum(-1) + var.sum(-1)).max()
    assert torch.all(diagonal.abs() <= 1e-5 * scale)
    assert torch.all(dist >= 0)
    assert torch.allclose(dist, dist.transpose(-1, -2), rtol=1e-5, atol=1e-5 * scale.item())
    assert torch.all(squared_wasserstein(mu, var, mu, var) == 0)
    mu2, var2 = gaussians(2, 10, 32, seed=8, dtype=torch.float32)
    assert torch.allclose(squared_wasserstein(mu, var, mu2, var2),
                          squared_wasserstein(mu2, var2, mu, var))
    assert torch.all(squared_wasserstein(mu, var, mu2, var2) >= 0)


def test_gradients_finite_at_zero_variance():
    # sqrt has an infinite derivative at 0: the distances must floor the variance
    mu = torch.randn(3, 4, requires_grad=True)
    var = torch.tensor([[0.0, 1.0, 0.0, 2.0]] * 3, requires_grad=True)
    other_var = torch.zeros(3, 4, requires_grad=True)
    loss = squared_wasserstein(mu, var, mu.detach() + 1, other_var).sum()
    loss = loss + pairwise_squared_wasserstein(mu, var, mu, other_var).sum()
    loss.backward()
    for grad in (mu.grad, var.grad, other_var.grad):
        assert torch.isfinite(grad).all()


def test_positive_variance_is_elu_plus_one_and_strictly_positive():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    assert torch.allclose(positive_variance(x), torch.nn.functional.elu(x) + 1, rtol=1e-12)
    extreme = torch.tensor([-1e30, -1e4, -200.0, -30.0, -20.0, 0.0, 1e4, 1e30], requires_grad=True)
    out = positive_variance(extreme)
    assert torch.all(out > 0)
    assert torch.all(out >= VARIANCE_FLOOR)
    # ELU(x) + 1 by subtraction would give exactly 0 here in float32
    assert out[4].item() == pytest.approx(torch.exp(torch.tensor(-20.0)).item(), rel=1e-5)
    out.sum().backward()
    assert torch.isfinite(extreme.grad).all()
    # and through the distance, from very negative pre-activations
    pre = torch.full((2, 3), -500.0, requires_grad=True)
    squared_wasserstein(torch.zeros(2, 3), positive_variance(pre),
                        torch.ones(2, 3), torch.ones(2, 3)).sum().backward()
    assert torch.isfinite(pre.grad).all()
