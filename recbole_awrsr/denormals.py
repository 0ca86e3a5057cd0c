"""Flush subnormal floats to zero on the CPU, for every thread of PyTorch's pool.

Softmax weights of far-apart logits, and the gradients that flow back through them,
fall below float32's smallest normal number (1.2e-38) as training goes on. x86 CPUs
take a slow path for every such subnormal operand: `SASRecAWR simple` epochs grew
longer as training went on and the refinement's n x n products filled with them
(benchmarks/README.md has the numbers). With flush-to-zero those values count as 0 (a change far below float32's
precision) and epochs stay at their first speed.

The setting is per thread and new threads copy it from the thread that starts them, so
it must be made before PyTorch's OpenMP pool starts its workers: importing
``recbole_awrsr`` does it first thing. A pool started earlier keeps its workers' setting
(only the calling thread changes).
"""

import numpy as np
import torch


def flush_denormals():
    """Switch flush-to-zero on for this thread (and the threads it starts later).

    Returns whether the CPU supports it (x86 with SSE3; elsewhere nothing changes).
    """
    # numpy works out (and caches) its float limits on first use; under flush-to-zero
    # it would find the smallest subnormal to be 0 and warn, so let it do that first
    for dtype in (np.float16, np.float32, np.float64, np.longdouble):
        np.finfo(dtype).smallest_subnormal
    return torch.set_flush_denormal(True)
