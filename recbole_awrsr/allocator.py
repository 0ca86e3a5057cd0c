"""Host memory kept for reuse: the ``reuse_freed_memory`` key.

A training step with ``train_targets: all`` allocates a few (targets, items) arrays of
tens of MB, and a full-ranking validation batch a (users, items) one of hundreds. glibc's
malloc serves blocks over 32 MB with a fresh ``mmap`` and hands them back on ``free``,
so every step faults each of their pages in again, which costs more than the arithmetic
that fills them. Told to serve everything from its heap and never shrink it, malloc
reuses the freed blocks (in most processes all of them; in some heap layouts a block
still lands at a new place now and then); the process keeps its peak size. Measured
speed-ups are in ``benchmarks/README.md``; ``tests/test_allocator.py`` counts the page faults.
"""

import ctypes
import sys

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

_kept = False


def glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):
        return None
    return libc


def keep_freed_memory():
    """Make malloc keep freed memory for reuse (no ``mmap`` for large blocks, no trimming).

    Process-wide and for the rest of the process. Returns True when in force, False where
    the C library is not glibc (macOS, Windows, musl), where nothing is changed.
    """
    global _kept
    if _kept:
        return True
    libc = glibc()
    if libc is None:
        return False
    _kept = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return _kept
