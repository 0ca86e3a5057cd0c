"""The sequence file shared by many sequential-recommendation repositories.

One line per user: ``user item item ...`` (whitespace-separated integer ids),
items in chronological order, as in STOSA's ``Beauty.txt``. Two doors lead here:
``convert sequence FILE --name NAME`` for any such file, and an Amazon category
with ``--format sequence`` (or a ``.txt`` file name). There are no
timestamps, so an item's timestamp is its 1-based position in the user's
line: the order is kept exactly and leave-one-out holds out the last items.

A user on two lines is refused: positions would restart at 1 on the second
line, so the merged history would interleave the two (1, 1, 2, 2, ...) and
leave-one-out would hold out an arbitrary item.
"""

from recbole_awrsr.datatools.convert.source import iter_lines, parse_int
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

FORMAT = "'user item item ...' (whitespace-separated integer ids, one user per line, chronological)"


def convert(input_path, output_dir, name):
    """Write ``<output_dir>/<name>/<name>.inter`` from a sequence file; returns the writer."""
    path = str(input_path)
    first_line = {}  # user id -> the line holding that user's history; one int per user
    with DatasetWriter(output_dir, name) as out:
        for number, text in iter_lines(path, FORMAT):
            fields = text.split()
            if len(fields) < 2:
                raise ConversionError(path, "a user id without any item id", FORMAT, number)
            user_id = parse_int(fields[0], "user id", path, number, FORMAT)
            if user_id in first_line:
                raise ConversionError(
                    path, f"user {user_id} again, already on line {first_line[user_id]} (one user "
                    f"per line: two lines of one user have no order between them)", FORMAT, number)
            first_line[user_id] = number
            user = str(user_id)
            for position, token in enumerate(fields[1:], start=1):
                item = parse_int(token, "item id", path, number, FORMAT)
                out.inter.write_row((user, str(item), "1", str(position)))
    return out
