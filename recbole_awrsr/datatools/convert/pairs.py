"""The plain ``user item`` pairs format: one interaction per line, lines in time order.

There are no timestamps, so an interaction's timestamp is its line number in
the file: each user's order, and the order across users, is the file's.
"""

from recbole_awrsr.datatools.convert.source import iter_lines, parse_int
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

FORMAT = "'user item' (two whitespace-separated integer ids per line, lines in time order)"


def convert(input_path, output_dir, name="pairs"):
    """Write ``<output_dir>/<name>/<name>.inter`` from a pairs file; returns the writer."""
    path = str(input_path)
    with DatasetWriter(output_dir, name) as out:
        for number, text in iter_lines(path, FORMAT):
            fields = text.split()
            if len(fields) != 2:
                raise ConversionError(path, f"{len(fields)} fields instead of 2", FORMAT, number)
            user = parse_int(fields[0], "user id", path, number, FORMAT)
            item = parse_int(fields[1], "item id", path, number, FORMAT)
            out.inter.write_row((str(user), str(item), "1", str(number)))
    return out
