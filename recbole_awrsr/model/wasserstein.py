"""The squared 2-Wasserstein distance between diagonal Gaussians.

For N(mu1, diag(v1)) and N(mu2, diag(v2)) it is
``||mu1 - mu2||^2 + ||sqrt(v1) - sqrt(v2)||^2``. One module, used by STOSA's
attention, loss and scoring and by the ``stochastic`` refinement.
"""

import torch


def squared_wasserstein(mu1, var1, mu2, var2):
    """Distance between matching Gaussians, broadcasting over leading dims.

    Shapes: all inputs (..., d) (broadcastable); returns (...).
    """
    return (mu1 - mu2).pow(2).sum(-1) + (var1.sqrt() - var2.sqrt()).pow(2).sum(-1)


def pairwise_squared_wasserstein(mu1, var1, mu2, var2):
    """Distance between every Gaussian of one set and every one of another.

    Shapes: ``mu1, var1`` (..., n, d), ``mu2, var2`` (..., m, d); returns (..., n, m).
    Matrix form ``|a|^2 + |b|^2 - 2 a.b`` for the means and for the standard
    deviations, so no (n, m, d) tensor is built; rounding can make it slightly
    negative, hence the clamp at zero.
    """
    std1, std2 = var1.sqrt(), var2.sqrt()
    sq_norms1 = mu1.pow(2).sum(-1) + var1.sum(-1)  # |sigma|^2 = sum of variances
    sq_norms2 = mu2.pow(2).sum(-1) + var2.sum(-1)
    cross = mu1 @ mu2.transpose(-1, -2) + std1 @ std2.transpose(-1, -2)
    dist = sq_norms1.unsqueeze(-1) + sq_norms2.unsqueeze(-2) - 2.0 * cross
    return dist.clamp_min(0.0)
