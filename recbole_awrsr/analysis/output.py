"""Writing analysis outputs safely: a temporary file in the target folder, then a rename.

A reader (or a crash half-way) never sees a half-written CSV, PNG or Markdown file:
``os.replace`` swaps the finished file in atomically on one file system.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # keep the real extension last: matplotlib and pandas pick the format from it
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, temp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield temp
        # mkstemp makes the file private (0600); published files get the umask-based mode
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def write_csv(frame, path, index=False):
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as temp:
        frame.to_csv(temp, index=index)
    return path


def write_text(text, path):
    """Write a text file (Markdown table, ...), atomically."""
    with atomic_path(path) as temp:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on servers and in tests).

    Imported on demand so that the trainer, which writes histories through this
    module, never loads matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=100):
    """Save a matplotlib figure as PNG, atomically, and close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)
    return path
