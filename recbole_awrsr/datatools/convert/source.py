"""Reading raw dataset files line by line, with errors that point at the offending line.

Every converter reads its input through :func:`iter_lines`, so that all of them
stream (memory does not grow with the input), decode strictly, report a bad
line as ``file:line`` together with the format they expected, treat a last
line without a line break as a sign of truncation, and show a progress bar on
long inputs.
"""

import codecs
import gzip
import hashlib
import io
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass

from tqdm import tqdm

from recbole_awrsr.errors import ConversionError

#: inputs bigger than this get a progress bar (when stderr is a terminal)
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
#: lines between two progress bar updates; updating on every line costs more than parsing it
PROGRESS_EVERY = 65536
#: what :func:`iter_lines` does with a last line that has no line break (see there)
FINAL_LINE_BREAK = ("refuse", "warn", "ignore")
#: characters of a cut line that messages show (its end: the cut is there)
SHOWN_CHARS = 60


def warn(message):
    """Print one ``warning:`` line on stderr: something the user should check, not an error."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Source:
    """A raw input file: a plain path, a ``.gz`` file, or a member of a ``.zip`` archive."""
    path: str
    member: str = None

    @property
    def name(self):
        """How error messages name this input."""
        return f"{self.path}:{self.member}" if self.member else self.path

    def size(self):
        """Compressed or plain size in bytes, for the progress bar."""
        if self.member:
            with zipfile.ZipFile(self.path) as archive:
                return archive.getinfo(self.member).file_size
        return os.path.getsize(self.path)

    def open_binary(self):
        """A binary file object of the (decompressed) content."""
        if self.member:
            archive = zipfile.ZipFile(self.path)
            try:
                return _ClosingMember(archive, archive.open(self.member))
            except BaseException:
                archive.close()
                raise
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")


class _ClosingMember(io.BufferedReader):
    """A zip member that closes its archive along with itself."""
    def __init__(self, archive, member):
        super().__init__(member)
        self._archive = archive

    def close(self):
        try:
            super().close()
        finally:
            self._archive.close()


def iter_lines(source, expected, encoding="utf-8", skip_blank=True, final_line_break="refuse"):
    """Yield ``(line_number, text)`` for each line of ``source``, without the line break.

    Decoding is strict (``latin-1`` never fails, for files published in it).
    ``encoding`` may be a tuple of candidates: the first that decodes the whole
    file is used (``("utf-8", "latin-1")`` for a latin-1 file that users may have
    re-saved as UTF-8). A UTF-8 byte-order mark before the first line is dropped:
    editors on Windows add it, and it is invisible in an error message. Blank
    lines are skipped. A missing, unreadable or empty file, and bytes
    that do not decode, raise :class:`ConversionError` naming the file and line.

    ``final_line_break`` says what a last line without a line break means. Every
    published line-oriented file ends with one, so its absence means the file was
    cut short, and a cut inside the last number passes every check with a wrong
    value (``...::97732``, a 1970 timestamp): ``"refuse"`` raises naming the line;
    ``"warn"`` prints one loud warning and converts (for files whose published
    form could not be checked, or that only describe items); ``"ignore"`` is for
    formats whose own syntax shows a cut (a JSON object per line).
    """
    if final_line_break not in FINAL_LINE_BREAK:
        raise ValueError(f"final_line_break must be one of {FINAL_LINE_BREAK}, not {final_line_break!r}")
    if isinstance(source, (str, os.PathLike)):
        source = Source(os.fspath(source))
    if not source.member and not os.path.isfile(source.path):
        problem = "is a folder, not a file" if os.path.isdir(source.path) else "no such file"
        raise ConversionError(source.name, problem, expected)
    if isinstance(encoding, tuple):
        encoding = pick_encoding(source, encoding)
    is_utf8 = codecs.lookup(encoding).name == "utf-8"
    progress = _progress(source)
    number, data_lines = 0, 0
    try:
        with source.open_binary() as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    # utf-8-sig drops a byte-order mark, which only the first line may carry
                    codec = "utf-8-sig" if number == 1 and is_utf8 else encoding
                    text = raw.decode(codec).rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise ConversionError(
                        source.name, f"bytes that are not valid {encoding} ({error.reason} "
                        f"at byte {error.start} of the line)", expected, number) from None
                if progress is not None and number % PROGRESS_EVERY == 0:
                    progress.update(PROGRESS_EVERY)
                if skip_blank and not text.strip():
                    continue  # trailing spaces after the last line break cut nothing
                if not raw.endswith(b"\n") and final_line_break != "ignore":
                    _unterminated(source, number, text, expected, final_line_break)
                data_lines += 1
                yield number, text
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        # truncated or corrupt compressed input, or an I/O failure half-way
        raise ConversionError(source.name, f"cannot be read ({error})", expected,
                              number + 1 if number else None) from None
    finally:
        if progress is not None:
            progress.update(number % PROGRESS_EVERY)  # the final count, shown when the bar closes
            progress.close()
    if data_lines == 0:
        raise ConversionError(source.name, "the file is empty (no data lines)", expected, 1)


def pick_encoding(source, candidates):
    """The first of ``candidates`` that decodes all of ``source`` (the last one if none does).

    Reads the file once more, which the item files this is for (``movies.dat``,
    170 KB) can afford; the last candidate should be one that never fails (``latin-1``).
    """
    for encoding in candidates[:-1]:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with source.open_binary() as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile):
            break  # an unreadable file: the reading itself reports it, naming the line
    return candidates[-1]


def shown(text):
    """``text`` for a message, with invisible characters (a BOM, a zero-width space) escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def _unterminated(source, number, text, expected, action):
    """Refuse, or warn about, the last line ``number`` of ``source``, which has no line break."""
    end = text if len(text) <= SHOWN_CHARS else "..." + text[-SHOWN_CHARS:]
    problem = f"the last line '{shown(end)}' has no line break"
    if action == "warn":
        warn(f"{source.name}, line {number}: {problem}: the file may be truncated (a cut inside a "
             f"number passes as another number); converted as it is, so compare the file's size "
             f"with the published one")
        return
    fix = "add the missing final line break" + (
        "" if source.member else f" (echo >> {source.path})")
    raise ConversionError(
        source.name, f"{problem}, so the file looks truncated (a download or copy cut short; a "
        f"cut inside a number would pass as another number)",
        f"{expected}, every line ending in a line break; if the file is complete, {fix}", number)


def _progress(source):
    """A tqdm bar counting lines, on stderr, for long inputs read from a terminal session."""
    if not sys.stderr.isatty():
        return None
    try:
        if source.size() < PROGRESS_MIN_BYTES:
            return None
    except OSError:
        return None

    return tqdm(desc=os.path.basename(source.name), unit=" lines", file=sys.stderr)


def parse_int(text, what, source, number, expected):
    """``text`` as a non-negative integer, or a :class:`ConversionError` for that line."""
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        raise ConversionError(source, f"{what} '{shown(text)}' is not a non-negative integer",
                              expected, number)
    return int(text)


def parse_float(text, what, source, number, expected):
    """``text`` as a finite float, or a :class:`ConversionError` for that line."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):
        raise ConversionError(source, f"{what} '{shown(str(text).strip())}' is not a number",
                              expected, number)
    return value


def format_number(value):
    """A float written without a useless ``.0`` (``5``, ``4.5``, ``978300760``) and without loss."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def file_digest(path, algorithm="sha256"):
    """Hex digest (SHA-256 unless told) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
