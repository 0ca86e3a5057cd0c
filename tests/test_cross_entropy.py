"""The full cross-entropy: torch's loss and gradient, computed leaner."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import build
from recbole_awrsr.model.cross_entropy import cross_entropy


def inputs(rows=37, classes=101, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, classes, generator=generator) * 3).to(dtype).requires_grad_()
    targets = torch.randint(0, classes, (rows,), generator=generator)
    return logits, targets


def test_hand_computed_value_and_gradient():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]], requires_grad=True)
    loss = cross_entropy(logits, torch.tensor([1, 0]))
    # row 1: p = (1/4, 3/4), target 1 -> -log 3/4; row 2: p = (1/2, 1/2) -> -log 1/2
    assert loss.item() == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2, rel=1e-6)
    loss.backward()
    expected = torch.tensor([[0.125, -0.125], [-0.25, 0.25]])  # (softmax - one-hot) / 2 rows
    assert torch.allclose(logits.grad, expected, atol=1e-7)


def test_equals_torch_cross_entropy_and_its_gradient():
    logits, targets = inputs()
    ours = cross_entropy(logits, targets)
    (grad,) = torch.autograd.grad(ours * 2.5, logits)
    reference_logits = logits.detach().clone().requires_grad_()
    theirs = F.cross_entropy(reference_logits, targets)
    (theirs * 2.5).backward()
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert torch.allclose(grad, reference_logits.grad, rtol=1e-5, atol=1e-8)


def test_bfloat16_logits_get_a_float32_loss_and_a_bfloat16_gradient():
    logits, targets = inputs(dtype=torch.bfloat16)
    loss = cross_entropy(logits, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    reference = F.cross_entropy(logits.detach().float(), targets)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    expected = torch.softmax(logits.detach().float(), 1)
    expected[torch.arange(len(targets)), targets] -= 1
    assert torch.allclose(logits.grad.float(), expected / len(targets), atol=1e-4)


def test_a_second_backward_is_refused():
    logits, targets = inputs()
    loss = cross_entropy(logits, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="runs once"):
        loss.backward()


@pytest.mark.parametrize("logits_shape, targets_shape", [((4, 3), (5,)), ((4,), (4,)), ((4, 3), (4, 1))])
def test_bad_shapes_are_refused(logits_shape, targets_shape):
    with pytest.raises(ValueError, match=r"logits \(T, N\) and targets \(T,\)"):
        cross_entropy(torch.zeros(logits_shape), torch.zeros(targets_shape, dtype=torch.long))


def test_model_loss_and_gradients_equal_torch_cross_entropy(tiny_config_dict, monkeypatch):
    """SASRecAWR's ``all`` loss with the lean cross-entropy against the same model using
    ``nn.CrossEntropyLoss`` on the same batch: the same loss and parameter gradients."""
    config, net, train_data, _, _ = build("SASRecAWR", config_dict={
        **tiny_config_dict, "train_targets": "all", "hidden_dropout_prob": 0.0,
        "attn_dropout_prob": 0.0})
    batch = next(iter(train_data))
    net.train()

    def gradients():
        net.zero_grad()
        loss = net.calculate_loss(batch)
        loss.backward()
        return loss.item(), {name: p.grad.clone() for name, p in net.named_parameters()
                             if p.grad is not None}

    ours, our_grads = gradients()
    monkeypatch.setattr("recbole_awrsr.model.sasrec_awr.cross_entropy", F.cross_entropy)
    theirs, their_grads = gradients()
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert our_grads.keys() == their_grads.keys() and len(our_grads) > 10
    for name, grad in our_grads.items():
        assert torch.allclose(grad, their_grads[name], rtol=1e-4, atol=1e-7), name
