"""Amazon 2014 (McAuley et al.) per-category files.

``ratings_<Category>.csv`` and ``reviews_<Category>_5.json[.gz]`` are read here.

The widely shared sequence file (``Beauty.txt``) is handled by :mod:`.sequence`;
:func:`convert` picks the reader from the file name. Amazon ids are strings
(``A2...`` reviewers, ``B00...`` products) and are kept as tokens.
"""

import json
import os

from recbole_awrsr.datatools.convert import sequence
from recbole_awrsr.datatools.convert.source import (
    format_number, iter_lines, parse_float, parse_int,
)
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

RATINGS_FORMAT = "'user,item,rating,timestamp' (no header; rating a number, timestamp a unix time)"
REVIEWS_FORMAT = ("one JSON object per line with reviewerID, asin, overall (a number) "
                  "and unixReviewTime (a unix time)")
INPUT_FORMAT = ("ratings_<Category>.csv, reviews_<Category>_5.json or .json.gz, "
                "or a sequence file ('user item item ...' per line, e.g. Beauty.txt)")
FORMATS = ("ratings", "reviews", "sequence")


def detect_format(path):
    """``ratings``, ``reviews`` or ``sequence`` from the file name."""
    lower = os.path.basename(str(path)).lower()
    if lower.endswith(".csv"):
        return "ratings"
    if lower.endswith((".json", ".json.gz")):
        return "reviews"
    return "sequence"


def locate(input_path, category):
    """The input file: ``input_path`` itself, or the category's file inside a folder."""
    path = os.fspath(input_path)
    if not os.path.isdir(path):
        return path
    candidates = [f"reviews_{category}_5.json.gz", f"reviews_{category}_5.json",
                  f"ratings_{category}.csv", f"{category}.txt"]
    for candidate in candidates:
        if os.path.isfile(os.path.join(path, candidate)):
            return os.path.join(path, candidate)
    raise ConversionError(path, f"holds none of {', '.join(candidates)}", INPUT_FORMAT)


def convert(input_path, output_dir, name, category, input_format=None):
    """Write ``<output_dir>/<name>/<name>.inter`` from one Amazon category file; returns the writer."""
    path = locate(input_path, category)
    kind = input_format or detect_format(path)
    if kind == "sequence":
        return sequence.convert(path, output_dir, name)
    reader = _ratings_rows if kind == "ratings" else _review_rows
    with DatasetWriter(output_dir, name) as out:
        for row in reader(path):
            out.inter.write_row(row)
    return out


def _ratings_rows(path):
    # a warning, not a refusal: the published ratings_<Category>.csv could not be checked here,
    # and refusing would stop a complete copy that happens to lack its final line break
    for number, text in iter_lines(path, RATINGS_FORMAT, final_line_break="warn"):
        fields = text.split(",")
        if len(fields) != 4:
            raise ConversionError(path, f"{len(fields)} comma-separated fields instead of 4",
                                  RATINGS_FORMAT, number)
        user, item = _token(fields[0], "user", path, number), _token(fields[1], "item", path, number)
        rating = parse_float(fields[2], "rating", path, number, RATINGS_FORMAT)
        stamp = parse_int(fields[3], "timestamp", path, number, RATINGS_FORMAT)
        yield user, item, format_number(rating), str(stamp)


def _review_rows(path):
    # a cut JSON object does not parse, and a whole one is whole: no final line break needed
    for number, text in iter_lines(path, REVIEWS_FORMAT, final_line_break="ignore"):
        try:
            review = json.loads(text)
        except ValueError as error:
            raise ConversionError(path, f"broken JSON ({error})", REVIEWS_FORMAT, number) from None
        if not isinstance(review, dict):
            raise ConversionError(path, "a JSON value that is not an object", REVIEWS_FORMAT, number)
        missing = [k for k in ("reviewerID", "asin", "overall", "unixReviewTime") if k not in review]
        if missing:
            raise ConversionError(path, f"no {', '.join(missing)} in the review", REVIEWS_FORMAT, number)
        user = _token(review["reviewerID"], "reviewerID", path, number, REVIEWS_FORMAT)
        item = _token(review["asin"], "asin", path, number, REVIEWS_FORMAT)
        rating = parse_float(review["overall"], "overall", path, number, REVIEWS_FORMAT)
        stamp = parse_int(str(review["unixReviewTime"]), "unixReviewTime", path, number,
                          REVIEWS_FORMAT)
        yield user, item, format_number(rating), str(stamp)


def _token(value, what, path, number, expected=RATINGS_FORMAT):
    """An id as an atomic-file token: a non-empty string without whitespace."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text or any(c.isspace() for c in text):
        raise ConversionError(path, f"{what} {value!r} is not an id (non-empty, no spaces)",
                              expected, number)
    return text
