"""All-or-nothing writing of a dataset's atomic files.

A converter streams its rows into temporary files inside the target folder
(:func:`recbole_awrsr.files.atomic_path`); only when every row has been written do
they replace the real ``.inter`` and ``.item`` files. On any error the temporary
files are removed, together with any folder this conversion created, so the output
folder is left exactly as it was. A conversion killed outright (SIGKILL, power
loss) cannot clean up: the next conversion into the same folder removes the
temporary files it left (see :func:`remove_stale_temporaries`). An output folder that cannot be created or written
(a file in its place, read-only, permission denied, disk full) is a
:class:`~recbole_awrsr.errors.ConversionError` naming the folder, not a traceback.
"""

import contextlib
import os
import re
import sys
import time

try:
    import fcntl  # POSIX: a live writer holds a lock on its temporary files
except ImportError:  # pragma: no cover - Windows: the age of a file decides alone
    fcntl = None

from recbole_awrsr.errors import ConversionError
from recbole_awrsr.files import atomic_path

#: the ``.inter`` header every converter writes (RecBole atomic-file ``name:type`` columns)
INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


def output_error(folder, error):
    """The one-line :class:`ConversionError` for an OS error met while writing into ``folder``."""
    # the path the system call failed on, when it says more than the folder itself
    named = getattr(error, "filename2", None) or getattr(error, "filename", None)
    reason = error.strerror or str(error)
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    elif named and os.path.abspath(os.fspath(named)) != os.path.abspath(folder):
        reason += f": {os.fspath(named)}"
    return ConversionError(folder, f"cannot create or write the output folder ({reason})",
                           "a folder you can write to (see --output-dir)")


def _temporary_name(name):
    """A regex matching the temporary files this writer makes for dataset ``name``.

    They are :func:`atomic_path`'s names for ``<name>.inter`` and ``<name>.item``:
    ``.<name>.<random>.tmp.inter`` and ``.<name>.<random>.tmp.item``. Nothing else
    in the folder matches (a download's ``.tmp.zip`` does not).
    """
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp\.(inter|item)")


def _held_by_a_live_writer(path):
    """Whether a running conversion still holds ``path`` (its lock dies with its process)."""
    if fcntl is None:
        return False
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        pass  # unreadable, or no locks on this file system: its age decides
    return False


def remove_stale_temporaries(folder, name, started):
    """Remove the temporary files a killed conversion of ``name`` left in ``folder``; returns them.

    Only files with this writer's temporary names (:func:`_temporary_name`), last
    written before ``started`` (this run's start, a ``time.time()``) and not locked
    by a live writer: a conversion running beside this one keeps its files. Says
    what it removed in one line on stderr.
    """
    pattern, removed, size = _temporary_name(name), [], 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # a missing or unreadable folder is reported when it is written
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            stat = entry.stat(follow_symlinks=False)
            if stat.st_mtime >= started or _held_by_a_live_writer(entry.path):
                continue
            os.remove(entry.path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: leave it
        removed.append(entry.name)
        size += stat.st_size
    if removed:
        names = ", ".join(sorted(removed))
        print(f"note: removed {len(removed)} stale temporary file{'s' if len(removed) > 1 else ''} "
              f"({size / 1e6:.1f} MB) left in {folder} by an interrupted conversion: {names}",
              file=sys.stderr)
    return removed


def _file_in_the_way(folder):
    """The outermost part of the ``folder`` path that exists but is not a folder, or None."""
    # walk the path as the user spelt it, so that the message names what they typed
    parts, path = [], os.path.normpath(folder)
    while path and path not in parts:
        parts.append(path)
        path = os.path.dirname(path)
    return next((p for p in reversed(parts) if os.path.lexists(p) and not os.path.isdir(p)), None)


class AtomicFile:
    """One output file being written to a temporary name; rows are tab-separated.

    ``stack`` (a :class:`contextlib.ExitStack`) holds the file's :func:`atomic_path`:
    closing the stack normally publishes the file, closing it with an exception drops it.
    """

    def __init__(self, stack, folder, filename, header):
        self.target = os.path.join(folder, filename)
        self.temp = stack.enter_context(atomic_path(self.target))
        self.handle = open(self.temp, "w", encoding="utf-8", newline="\n")
        # closed before the stack publishes or drops the file (a no-op if already closed)
        stack.callback(self.handle.close)
        if fcntl is not None:
            # marks the file as alive for remove_stale_temporaries; released when it is closed,
            # or when the process dies, however it dies
            try:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # no locks on this file system: the file's age protects it instead
        self.handle.write("\t".join(header) + "\n")
        self.rows = 0

    def write_row(self, fields):
        """Append one row; fields are already strings without tabs or line breaks."""
        try:
            self.handle.write("\t".join(fields) + "\n")
        except OSError as error:  # a full disk or a vanished folder, met when the buffer flushes
            raise output_error(os.path.dirname(self.target), error) from None
        self.rows += 1


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
        self._files = None
        self._created = []
        self.written = []

    def __enter__(self):
        started = time.time()
        remove_stale_temporaries(self.folder, self.name, started)
        # remember which folders we create, to remove exactly those on failure
        missing, path = [], os.path.abspath(self.folder)
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        self._created = missing  # deepest first
        self._files = contextlib.ExitStack()
        with self._aborting_on_error():
            os.makedirs(self.folder, exist_ok=True)
            self.inter = AtomicFile(self._files, self.folder, f"{self.name}.inter", INTER_HEADER)
        return self

    def open_item(self, header):
        """Start the ``.item`` file with the given ``name:type`` header."""
        try:
            self.item = AtomicFile(self._files, self.folder, f"{self.name}.item", header)
        except OSError as error:
            raise output_error(self.folder, error) from None
        return self.item

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._abort(exc)
            return False
        with self._aborting_on_error():
            for atomic in (self.inter, self.item):
                if atomic is not None:
                    atomic.handle.close()  # a full disk shows up here, before anything is replaced
        try:
            # publishes every file; a file that cannot be replaced (a folder in its place)
            # makes every atomic_path drop its temporary file on the way out
            self._files.close()
            self.written += [f.target for f in (self.inter, self.item) if f is not None]
            stale_item = os.path.join(self.folder, f"{self.name}.item")
            if self.item is None and os.path.exists(stale_item):
                os.remove(stale_item)
        except OSError as error:
            raise output_error(self.folder, error) from None
        return False

    @contextlib.contextmanager
    def _aborting_on_error(self):
        """Any error inside drops everything written; an OS error becomes one line naming the folder."""
        try:
            yield
        except OSError as error:
            self._abort(error)
            raise output_error(self.folder, error) from None
        except BaseException as error:
            self._abort(error)
            raise

    def _abort(self, error):
        # handing the error to the stack makes each atomic_path drop its temporary file
        self._files.__exit__(type(error), error, error.__traceback__)
        self._remove_created()

    def _remove_created(self):
        for path in self._created:
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty: something else wrote there meanwhile; leave it
