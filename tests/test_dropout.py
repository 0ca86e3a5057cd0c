"""FastDropout: the distribution of nn.Dropout, and every dropout of our models swapped."""

import pytest
import torch
from torch import nn

from conftest import build
from recbole_awrsr.model.dropout import FastDropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_keeps_one_minus_p_and_scales_the_kept(p):
    torch.manual_seed(0)
    x = torch.full((400_000,), 2.0)
    y = FastDropout(p).train()(x)
    kept = y != 0
    # 400k Bernoulli draws: the kept share is 1 - p to within 5 standard deviations
    sd = (p * (1 - p) / x.numel()) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sd
    assert torch.allclose(y[kept], torch.full_like(y[kept], 2.0 / (1 - p)))
    # unbiased: the mean of the output is the mean of the input
    assert abs(y.mean().item() - 2.0) < 5 * 2.0 / (1 - p) * sd


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input_keeps_one_minus_p(dtype):
    """Under autocast the mask is drawn in float32: the kept share stays 1 - p."""
    torch.manual_seed(0)
    p = 0.3
    x = torch.full((400_000,), 2.0, dtype=dtype)
    y = FastDropout(p).train()(x)
    assert y.dtype == dtype
    sd = (p * (1 - p) / x.numel()) ** 0.5
    assert abs((y != 0).float().mean().item() - (1 - p)) < 5 * sd
    # the same draws as a float32 input of the same seed: the mask does not depend on dtype
    torch.manual_seed(0)
    reference = FastDropout(p).train()(torch.full((400_000,), 2.0))
    assert torch.equal(y != 0, reference != 0)


def test_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    y = FastDropout(0.4).train()(x)
    y.sum().backward()
    expected = torch.where(y != 0, torch.full_like(x, 1 / 0.6), torch.zeros_like(x))
    assert torch.allclose(x.grad, expected)


def test_identity_in_eval_and_at_p_zero_zeros_at_p_one():
    x = torch.randn(5, 7)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))


def test_swaps_every_dropout_and_keeps_p():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.2),
                        nn.Sequential(nn.Dropout(0.7), nn.ReLU()))
    use_fast_dropout(net)
    assert type(net[1]) is FastDropout and net[1].p == 0.2
    assert type(net[2][0]) is FastDropout and net[2][0].p == 0.7


@pytest.mark.parametrize("model", ["SASRecAWR", "STOSA", "STOSAAWR"])
def test_models_use_no_plain_dropout(tiny_config_dict, model):
    _, net, _, _, _ = build(model, config_dict=tiny_config_dict)
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert dropouts, "the models do use dropout"
    assert all(type(m) is FastDropout for m in dropouts)
