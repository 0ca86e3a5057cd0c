"""All-or-nothing writing of a dataset's atomic files.

A converter streams its rows into temporary files inside the target folder;
only when every row has been written do they replace the real ``.inter`` and
``.item`` files (``os.replace``, atomic on one file system). On any error the
temporary files are removed, together with any folder this conversion created,
so the output folder is left exactly as it was.
"""

import os
import tempfile

#: the ``.inter`` header every converter writes (RecBole atomic-file ``name:type`` columns)
INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


def _umask():
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicFile:
    """One output file being written to a temporary name; rows are tab-separated."""

    def __init__(self, folder, filename, header):
        self.target = os.path.join(folder, filename)
        fd, self.temp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".tmp", dir=folder)
        # mkstemp makes the file private (0600); published files get the usual umask-based mode
        os.chmod(self.temp, 0o666 & ~_umask())
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.handle.write("\t".join(header) + "\n")
        self.rows = 0

    def write_row(self, fields):
        """Append one row; fields are already strings without tabs or line breaks."""
        self.handle.write("\t".join(fields) + "\n")
        self.rows += 1

    def discard(self):
        """Close and delete the temporary file."""
        self.handle.close()
        if os.path.exists(self.temp):
            os.remove(self.temp)


class DatasetWriter:
    """Context manager writing ``<output_dir>/<name>/<name>.inter`` (and ``.item`` if asked for).

    ``with DatasetWriter(output_dir, name) as out: out.inter.write_row(...)``;
    ``out.open_item(header)`` starts the ``.item`` file. Leaving the block with
    an exception discards everything; leaving it normally publishes the files.
    A ``.item`` file left from an earlier conversion is removed when this one
    writes none, so that the folder never mixes two conversions.
    """

    def __init__(self, output_dir, name):
        self.output_dir, self.name = os.fspath(output_dir), name
        self.folder = os.path.join(self.output_dir, name)
        self.inter = self.item = None
        self._created = []
        self.written = []

    def __enter__(self):
        # remember which folders we create, to remove exactly those on failure
        missing, path = [], os.path.abspath(self.folder)
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        os.makedirs(self.folder, exist_ok=True)
        self._created = missing  # deepest first
        try:
            self.inter = AtomicFile(self.folder, f"{self.name}.inter", INTER_HEADER)
        except BaseException:
            self._remove_created()
            raise
        return self

    def open_item(self, header):
        """Start the ``.item`` file with the given ``name:type`` header."""
        self.item = AtomicFile(self.folder, f"{self.name}.item", header)
        return self.item

    def __exit__(self, exc_type, exc, tb):
        files = [f for f in (self.inter, self.item) if f is not None]
        if exc_type is not None:
            self._abort(files)
            return False
        try:
            for atomic in files:
                atomic.handle.close()  # a full disk shows up here, before anything is replaced
        except BaseException:
            self._abort(files)
            raise
        for atomic in files:
            os.replace(atomic.temp, atomic.target)
            self.written.append(atomic.target)
        stale_item = os.path.join(self.folder, f"{self.name}.item")
        if self.item is None and os.path.exists(stale_item):
            os.remove(stale_item)
        return False

    def _abort(self, files):
        for atomic in files:
            atomic.discard()
        self._remove_created()

    def _remove_created(self):
        for path in self._created:
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty: something else wrote there meanwhile; leave it
