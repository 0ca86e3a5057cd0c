"""Importing the package flushes subnormal floats to zero in every thread of the pool."""

import subprocess
import sys


def test_import_flushes_subnormals_in_all_threads():
    # a fresh interpreter with two threads: the product of a large tensor runs on both,
    # so a worker thread without flush-to-zero would leave some subnormal results
    code = (
        "import torch, recbole_awrsr; torch.set_num_threads(2); "
        "x = torch.full((4_000_000,), 1e-30) * 1e-10; "
        "print(int((x != 0).sum()), int((torch.full((8,), 1e-30) * 1.0 != 0).sum()))"
    )
    # -W error: numpy must not warn that its smallest subnormal is zero (see denormals.py)
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                          capture_output=True, text=True, check=True)
    subnormal_products, normal_products = map(int, done.stdout.split())
    assert subnormal_products == 0  # 1e-40 is below float32's smallest normal: flushed
    assert normal_products == 8  # normal numbers are untouched


def test_without_the_package_subnormals_survive():
    # the control: the same product in plain PyTorch keeps its subnormal results,
    # so the test above can fail
    code = "import torch; print(int((torch.full((1000,), 1e-30) * 1e-10 != 0).sum()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) == 1000
