"""Writing files safely: everything the plugin writes goes through :func:`atomic_path`.

A file is first written under a temporary name in its own folder, then swapped in
with ``os.replace`` (atomic on one file system), so a reader, or a crash half-way,
never sees a half-written CSV, PNG, Markdown, YAML, atomic dataset file or download.
"""

import contextlib
import os
import tempfile


def _umask():
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; a normal exit from the block moves it to ``path``.

    The temporary file already exists (empty) and may be opened, written, and kept open
    for as long as the block lasts; close it before the block ends. Its name starts
    with ``.`` (hidden) and keeps ``path``'s extension last, because pandas and
    matplotlib pick the format from it. The published file gets the usual umask-based
    mode. On an exception the temporary file is removed and ``path`` is left as it was.
    The folder is created when missing.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, temp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield temp
        # mkstemp makes the file private (0600); a published file is as readable as any other
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as temp:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path


def write_csv(frame, path, index=False):
    """Write a pandas DataFrame to ``path`` as CSV, atomically; returns ``path``."""
    with atomic_path(path) as temp:
        frame.to_csv(temp, index=index)
    return path


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on servers and in tests).

    Imported on demand: the trainer and the converters write through this module and
    should not pay for loading matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=100):
    """Save a matplotlib figure to ``path`` as PNG, atomically, and close it; returns ``path``."""
    plt = pyplot()
    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)
    return path
