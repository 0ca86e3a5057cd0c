"""Dropout with a cheaper random draw: the same distribution as ``nn.Dropout``.

On this project's CPUs ``nn.Dropout`` was the largest single cost of a training
step (the profile is in benchmarks/README.md): PyTorch draws its mask with
``bernoulli_``, which is several times slower per element than ``torch.rand``. :class:`FastDropout` keeps an element when a uniform draw
U in [0, 1) is at least p, so it is kept with probability 1 - p, and scales the
kept ones by 1 / (1 - p): the same random function as ``nn.Dropout``, drawn from
a different stream (so a seed gives other masks than RecBole's modules would).
"""

import torch
from torch import nn


class FastDropout(nn.Dropout):
    """``nn.Dropout(p)`` drawn as ``rand >= p``: any shape in, the same shape out.

    A drop-in subclass (same ``p``, same ``train``/``eval`` behaviour, no
    parameters), so swapping it into RecBole's modules changes neither the
    parameter names nor the random draws of weight initialisation.
    """

    def forward(self, input):
        if not self.training or self.p == 0.0:
            return input
        if self.p == 1.0:
            return input * 0.0
        # one float buffer: the uniform draw becomes the scaled keep mask in place; drawn in
        # float32 under autocast, where a bfloat16 uniform would shift the keep probability
        dtype = torch.float32 if input.dtype in (torch.bfloat16, torch.float16) else input.dtype
        mask = torch.rand(input.shape, dtype=dtype, device=input.device)
        mask = mask.ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return input * mask.to(input.dtype)


def use_fast_dropout(module):
    """Replace every ``nn.Dropout`` inside ``module`` by a :class:`FastDropout` of the same p.

    Returns ``module``. Meant for modules built by RecBole's constructors (its
    attention and feed-forward blocks), whose dropout attributes we do not write.
    """
    for name, child in list(module.named_children()):
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p))
        else:
            use_fast_dropout(child)
    return module
