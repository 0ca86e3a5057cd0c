"""``reuse_freed_memory``: large blocks freed by one step are reused by the next, not faulted in again."""

import json
import subprocess
import sys

import pytest

from recbole_awrsr import allocator

pytestmark = pytest.mark.skipif(allocator.glibc() is None, reason="the C library is not glibc")

# allocates, fills and frees a 64 MB tensor 14 times; prints the page faults of the last 10
# (the first few blocks land at new places in the growing heap; later ones are mostly reused)
PROBE = """
import json, resource, sys, torch
from recbole_awrsr.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def once():
    torch.empty(16 * 2**20).fill_(1.0)
for _ in range(4):
    once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    once()
print(json.dumps({"applied": applied,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode):
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default, kept = probe("default"), probe("keep")
    pages = 64 * 2**20 // 4096
    # glibc's default: a fresh mmap per allocation, every page faulted in each time
    assert default["faults"] >= 9 * pages
    assert kept["applied"] is True
    # kept: most processes fault no block in again; in some heap layouts a block still lands
    # at a new place now and then (42 probes: none in 17, at most 5 of the 10 blocks)
    assert kept["faults"] <= 0.6 * default["faults"]


def test_build_applies_it_unless_the_key_is_off(tiny_config_dict, monkeypatch):
    from conftest import build

    calls = []
    monkeypatch.setattr("recbole_awrsr.quick_start.keep_freed_memory", lambda: calls.append(1))
    build("SASRecAWR", config_dict=tiny_config_dict)
    assert calls == [1]
    build("SASRecAWR", config_dict={**tiny_config_dict, "reuse_freed_memory": False})
    assert calls == [1]
