"""Diagonal Gaussians: a positive variance map and the squared 2-Wasserstein distance.

For N(mu1, diag(v1)) and N(mu2, diag(v2)) the distance is
``||mu1 - mu2||^2 + ||sqrt(v1) - sqrt(v2)||^2``. One module, used by STOSA's
attention, loss and scoring and by the ``stochastic`` refinement.

Numerical safety: the derivative of ``sqrt`` at 0 is infinite, and a variance
can reach exactly 0 in float32 (``ELU(x) + 1`` for x below about -17, by
cancellation). Both distances therefore take the square root of the variance
clamped at :data:`VARIANCE_FLOOR`, whose gradient is zero below the floor instead of
``inf * 0 = NaN``.

Mixed precision (RecBole's ``enable_amp``, ``torch.autocast``): the variance map and
both distances run in float32 whatever autocast would pick. The matrix form
``|a|^2 + |b|^2 - 2 a.b`` cancels: with bfloat16's 8-bit mantissa the difference of
two nearby Gaussians would be lost entirely (and ``exp`` of the variance map would
keep 2-3 digits). float64 inputs stay float64.
"""

import torch

#: smallest variance the distances (and :func:`positive_variance`) work with
VARIANCE_FLOOR = 1e-12

#: the dtypes autocast computes in, which :func:`at_least_float32` widens
LOW_PRECISION = (torch.bfloat16, torch.float16)


def at_least_float32(x):
    """``x`` as float32 when autocast made it bfloat16 or float16, else ``x`` itself (any shape).

    A no-op (the same tensor, no copy) for float32 and float64, so code paths
    without autocast compute exactly what they computed before.
    """
    return x.float() if x.dtype in LOW_PRECISION else x


def float32_region(tensor):
    """Context in which autocast is off on ``tensor``'s device: products of float32
    inputs stay float32 (nested inside RecBole's autocast region)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def positive_variance(x):
    """ELU(x) + 1, computed without cancellation and floored: strictly positive.

    ELU(x) + 1 is ``x + 1`` for x > 0 and ``exp(x)`` otherwise; written that way it
    keeps its relative precision for very negative x (``exp(x) - 1 + 1`` rounds to 0
    below x of about -17). The exponent is clamped at 0 so that the branch
    ``torch.where`` discards cannot overflow and poison the gradient with
    ``inf * 0``. Shape-preserving; float32 for bfloat16/float16 input (autocast).
    """
    x = at_least_float32(x)
    return torch.where(x > 0, x + 1.0, torch.exp(x.clamp_max(0.0))).clamp_min(VARIANCE_FLOOR)


def _std(var):
    """Standard deviations, with the variance floored so that the gradient stays finite."""
    return var.clamp_min(VARIANCE_FLOOR).sqrt()


def squared_wasserstein(mu1, var1, mu2, var2):
    """Distance between matching Gaussians, broadcasting over leading dims.

    Shapes: all inputs (..., d) (broadcastable); returns (...). Direct form
    (differences first), so it is exact up to rounding and never negative.
    Computed in float32 at least (see the module's note on mixed precision).
    """
    mu1, var1, mu2, var2 = (at_least_float32(t) for t in (mu1, var1, mu2, var2))
    return (mu1 - mu2).pow(2).sum(-1) + (_std(var1) - _std(var2)).pow(2).sum(-1)


def pairwise_squared_wasserstein(mu1, var1, mu2, var2):
    """Distance between every Gaussian of one set and every one of another.

    Shapes: ``mu1, var1`` (..., n, d), ``mu2, var2`` (..., m, d); returns (..., n, m).
    Matrix form ``|a|^2 + |b|^2 - 2 a.b`` with a = [mu1, sqrt(var1)] and
    b = [mu2, sqrt(var2)] (one matrix product for both terms), so no (n, m, d)
    tensor is built; rounding can make it slightly negative, hence the clamp at zero.
    Computed in float32 at least, with autocast off for the product: under autocast
    it would round ``a.b`` to bfloat16 before the cancellation.
    """
    mu1, var1, mu2, var2 = (at_least_float32(t) for t in (mu1, var1, mu2, var2))
    with float32_region(mu1):
        a = torch.cat([mu1, _std(var1)], dim=-1)
        b = torch.cat([mu2, _std(var2)], dim=-1)
        outer_sum = a.pow(2).sum(-1).unsqueeze(-1) + b.pow(2).sum(-1).unsqueeze(-2)
        # in place on a fresh tensor: the (..., n, m) attention-sized buffers dominate the cost
        dist = outer_sum.sub_(a @ b.transpose(-1, -2), alpha=2.0)
        return dist.clamp_min(0.0)
