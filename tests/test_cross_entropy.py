"""The full cross-entropy: torch's loss and gradients, computed leaner (from scores, or
block by block from the hidden states and item embeddings)."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import build
from recbole_awrsr.model.cross_entropy import block_rows, cross_entropy, linear_cross_entropy


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
    """SASRecAWR's ``all`` loss with the block-wise cross-entropy against the same model
    scoring with a product and ``nn.CrossEntropyLoss`` on the same batch: the same loss and
    parameter gradients (the item embeddings get both their input and their output part)."""
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
    monkeypatch.setattr("recbole_awrsr.model.sasrec_awr.linear_cross_entropy",
                        lambda hidden, weight, targets: F.cross_entropy(hidden @ weight.t(), targets))
    theirs, their_grads = gradients()
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert our_grads.keys() == their_grads.keys() and len(our_grads) > 10
    for name, grad in our_grads.items():
        assert torch.allclose(grad, their_grads[name], rtol=1e-4, atol=1e-7), name


def linear_inputs(rows, items, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=generator).requires_grad_()
    weight = (torch.randn(items, dim, generator=generator) * 0.5).requires_grad_()
    targets = torch.randint(0, items, (rows,), generator=generator)
    return hidden, weight, targets


def test_block_rows_keep_a_block_of_scores_in_two_mebibytes():
    assert block_rows(3417) == 128 and block_rows(12102) == 32 and block_rows(1683) == 256
    assert block_rows(10 ** 7) == 16  # never fewer rows than 16
    for items in (5, 1683, 3417, 12102, 40000):
        rows = block_rows(items)
        assert rows & (rows - 1) == 0
        assert rows * items <= 2 ** 19 or rows == 16


def test_linear_hand_computed_value_and_gradients():
    # scores [[0, log 3], [2, 2]] from hidden rows (1, 0), (0, 1) and weight [[0, 2], [log 3, 2]]
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    weight = torch.tensor([[0.0, 2.0], [math.log(3.0), 2.0]], requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.tensor([1, 0]))
    assert loss.item() == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2, rel=1e-6)
    loss.backward()
    grad_scores = torch.tensor([[0.125, -0.125], [-0.25, 0.25]])  # (softmax - one-hot) / 2
    assert torch.allclose(hidden.grad, grad_scores @ weight.detach(), atol=1e-7)
    assert torch.allclose(weight.grad, grad_scores.t() @ hidden.detach(), atol=1e-7)


@pytest.mark.parametrize("rows, items", [(1, 7), (37, 101), (300, 40000), (1000, 3417)])
def test_linear_equals_torch_on_the_product_across_block_boundaries(rows, items):
    """One row, one block, several blocks with a short last one (block_rows: 16 for 40,000
    items, 128 for 3,417): torch's loss and both gradients, under a scaled loss too."""
    hidden, weight, targets = linear_inputs(rows, items)
    ours = linear_cross_entropy(hidden, weight, targets)
    grads = torch.autograd.grad(ours * 2.5, (hidden, weight))
    reference = [tensor.detach().clone().requires_grad_() for tensor in (hidden, weight)]
    theirs = F.cross_entropy(reference[0] @ reference[1].t(), targets)
    (theirs * 2.5).backward()
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    for grad, tensor in zip(grads, reference):
        assert torch.allclose(grad, tensor.grad, rtol=1e-4, atol=1e-7)


def test_linear_without_grad_mode_gives_the_loss_and_no_gradients():
    hidden, weight, targets = linear_inputs(50, 30)
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, targets)
    assert loss.item() == pytest.approx(F.cross_entropy(hidden @ weight.t(), targets).item(), rel=1e-6)
    assert not loss.requires_grad
    # only the hidden states need a gradient: the weight's is not returned
    hidden, weight, targets = linear_inputs(50, 30)
    linear_cross_entropy(hidden, weight.detach(), targets).backward()
    assert hidden.grad is not None and weight.grad is None


def test_linear_under_autocast_scores_in_bfloat16_and_keeps_a_float32_loss():
    hidden, weight, targets = linear_inputs(40, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(hidden, weight, targets)
    loss.backward()
    scores = (hidden.detach().bfloat16() @ weight.detach().bfloat16().t()).float()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(F.cross_entropy(scores, targets).item(), rel=1e-5)
    assert hidden.grad.dtype == torch.float32 and torch.isfinite(weight.grad).all()


@pytest.mark.parametrize("shapes", [((4, 3), (5, 3), (5,)), ((4, 3), (5, 2), (4,)), ((4,), (5, 4), (4,))])
def test_linear_bad_shapes_are_refused(shapes):
    hidden, weight, targets = shapes
    with pytest.raises(ValueError, match=r"hidden \(T, d\), weight \(N, d\) and targets \(T,\)"):
        linear_cross_entropy(torch.zeros(hidden), torch.zeros(weight), torch.zeros(targets, dtype=torch.long))
