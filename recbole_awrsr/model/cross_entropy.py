"""Cross-entropy over every item, without torch's full-size (targets, items) arrays.

With ``train_targets: all`` a batch scores thousands of targets against every item
(12,102 on Beauty), and the loss's (targets, items) arrays dominate the step: torch's
log-softmax writes one, the NLL backward zero-fills a second and the log-softmax backward
reads both to write a third, each far larger than the CPU's caches.

:func:`linear_cross_entropy` (what the models train with) takes the hidden states and the
item embeddings instead of the scores, and works through the targets a block of rows at a
time: each block's scores, softmax and softmax-minus-one-hot stay in cache while they
give the block's loss and its share of both gradients, which the forward pass keeps (a
(T, d) and an (items, d) array) for the backward to scale. :func:`cross_entropy` takes
scores already made (under autocast, where the product runs in bfloat16) and turns the
saved log-probabilities into the gradient in place. Both give torch's loss and gradients
up to float rounding (``tests/test_cross_entropy.py``); the speed is in
``benchmarks/README.md``.
"""

import math

import torch

#: the floats of one block of scores in :func:`linear_cross_entropy` (2 MiB: a core's L2)
BLOCK_FLOATS = 2 ** 19


class _FullCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``logits`` (T, N) against ``targets`` (T,); see :func:`cross_entropy`."""

    @staticmethod
    def forward(ctx, logits, targets):
        # float32 log-softmax whatever the logits' dtype (under autocast they are bfloat16)
        log_probs = torch.log_softmax(logits.float(), dim=1)
        loss = -log_probs.gather(1, targets[:, None]).mean()
        ctx.save_for_backward(log_probs, targets)
        ctx.logits_dtype = logits.dtype
        ctx.spent = False
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if ctx.spent:
            raise RuntimeError("cross_entropy's backward reuses its saved buffer and runs once: "
                               "backward through it a second time (retain_graph) is not supported")
        ctx.spent = True
        log_probs, targets = ctx.saved_tensors
        grad = log_probs.exp_()  # softmax, in the buffer nothing else reads
        grad[torch.arange(len(targets), device=grad.device), targets] -= 1
        grad.mul_(grad_loss / len(targets))
        return grad.to(ctx.logits_dtype), None


def cross_entropy(logits, targets):
    """Mean cross-entropy loss, as ``torch.nn.CrossEntropyLoss()(logits, targets)``.

    ``logits`` (T, N) float32 or bfloat16, ``targets`` (T,) int64 class indices in [0, N);
    returns a float32 scalar. No class weights, label smoothing or ignored index.
    """
    if logits.dim() != 2 or targets.dim() != 1 or len(logits) != len(targets):
        raise ValueError(f"cross_entropy takes logits (T, N) and targets (T,), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    return _FullCrossEntropy.apply(logits, targets)


def block_rows(n_items):
    """Rows of targets per block for ``n_items`` items: a power of two, at least 16, whose
    (rows, items) float32 block is at most :data:`BLOCK_FLOATS` floats where it can be."""
    return max(16, 2 ** int(math.log2(max(1, BLOCK_FLOATS // max(1, n_items)))))


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``; see :func:`linear_cross_entropy`."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, with_gradients):
        rows = block_rows(len(weight))
        grad_hidden = torch.empty_like(hidden) if with_gradients else None
        grad_weight = torch.zeros_like(weight) if with_gradients else None
        total = hidden.new_zeros((), dtype=torch.float64)
        index = torch.arange(rows, device=hidden.device)
        for start in range(0, len(hidden), rows):
            block, block_targets = hidden[start:start + rows], targets[start:start + rows]
            picked = index[:len(block_targets)]
            scores = block @ weight.t()  # (rows, items): the only block-sized array
            target_scores = scores[picked, block_targets]
            largest = scores.amax(1, keepdim=True)
            scores.sub_(largest).exp_()
            sums = scores.sum(1, keepdim=True)
            # -log softmax at the target = log sum exp - score
            total += (largest + sums.log()).squeeze(1).sub_(target_scores).sum(dtype=torch.float64)
            if with_gradients:
                scores.div_(sums)  # softmax
                scores[picked, block_targets] -= 1
                torch.mm(scores, weight, out=grad_hidden[start:start + rows])
                grad_weight.addmm_(scores.t(), block)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.count = len(hidden)
        return (total / len(hidden)).to(hidden.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is None:
            raise RuntimeError("linear_cross_entropy was computed without gradients "
                               "(torch.no_grad, or no input that requires them)")
        scale = grad_loss / ctx.count
        return grad_hidden * scale, grad_weight * scale, None, None


def linear_cross_entropy(hidden, weight, targets):
    """Mean cross-entropy of the scores ``hidden @ weight.T`` against ``targets``.

    As ``torch.nn.functional.cross_entropy(hidden @ weight.t(), targets)``, without the
    (T, N) arrays (see the module's docstring). ``hidden`` (T, d) and ``weight`` (N, d)
    float32, ``targets`` (T,) int64 in [0, N); returns a float32 scalar whose backward
    reaches both ``hidden`` and ``weight``. The gradients are computed with the loss
    when grad mode is on and an input requires them. Under autocast the scores are
    made by the autocast product and go to :func:`cross_entropy`.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or targets.dim() != 1 or len(hidden) != len(targets) \
            or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy takes hidden (T, d), weight (N, d) and targets (T,), "
                         f"got {tuple(hidden.shape)}, {tuple(weight.shape)} and {tuple(targets.shape)}")
    if torch.is_autocast_enabled(hidden.device.type):
        return cross_entropy(hidden @ weight.t(), targets)
    with_gradients = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _LinearCrossEntropy.apply(hidden, weight, targets, with_gradients)
