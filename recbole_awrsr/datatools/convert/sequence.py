"""The sequence file shared by many sequential-recommendation repositories.

One line per user: ``user item item ...`` (whitespace-separated integer ids),
items in chronological order, as in STOSA's ``Beauty.txt``. There are no
timestamps, so an item's timestamp is its 1-based position in the user's
line: the order is kept exactly and leave-one-out holds out the last items.
"""

from recbole_awrsr.datatools.convert.source import iter_lines, parse_int
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

FORMAT = "'user item item ...' (whitespace-separated integer ids, one user per line, chronological)"


def convert(input_path, output_dir, name):
    """Write ``<output_dir>/<name>/<name>.inter`` from a sequence file; returns the writer."""
    path = str(input_path)
    with DatasetWriter(output_dir, name) as out:
        for number, text in iter_lines(path, FORMAT):
            fields = text.split()
            if len(fields) < 2:
                raise ConversionError(path, "a user id without any item id", FORMAT, number)
            user = str(parse_int(fields[0], "user id", path, number, FORMAT))
            for position, token in enumerate(fields[1:], start=1):
                item = parse_int(token, "item id", path, number, FORMAT)
                out.inter.write_row((user, str(item), "1", str(position)))
    return out
