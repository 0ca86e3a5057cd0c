"""Cross-entropy over every item, with a leaner backward pass than ``nn.CrossEntropyLoss``.

With ``train_targets: all`` a batch scores about a thousand targets against every item
(12,102 on Beauty), and the loss's (targets, items) arrays dominate the step: torch's
log-softmax writes one, the NLL backward zero-fills a second and the log-softmax backward
reads both to write a third. Here the backward turns the saved log-probabilities into
the gradient in place, softmax minus one-hot, in one pass. Same loss, same gradient up
to float rounding (``tests/test_cross_entropy.py``); the speed is in ``benchmarks/README.md``.
"""

import torch


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
