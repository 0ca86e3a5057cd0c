"""Kaggle's "Anime Recommendations Database": ``rating.csv`` (interactions) and ``anime.csv`` (items).

``rating.csv`` (``user_id,anime_id,rating`` with a header; rating -1 means
watched without a rating) has no timestamps: an interaction's timestamp is its
line number in ``rating.csv``, so a user's order is the file's order (see
dataset_atomic/README.md for what that means for leave-one-out).

A file named ``rating.csv`` is compared with the published one (size, then
SHA-256 only when the size matches), and one line says whether it is that file:
a part or another version converts as well, but its numbers are not comparable
with published results.
"""

import csv
import os
import sys
from dataclasses import dataclass

from recbole_awrsr.datatools.convert.source import (
    file_digest, format_number, iter_lines, parse_float, parse_int,
)
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

RATINGS_HEADER = "user_id,anime_id,rating"
RATINGS_FORMAT = f"'{RATINGS_HEADER}' header, then integer ids and a rating (-1 or 1-10) per line"
ANIME_HEADER = "anime_id,name,genre,type,episodes,rating,members"
ANIME_FORMAT = f"'{ANIME_HEADER}' header, then one CSV row per anime"
INPUT_FORMAT = "Kaggle's rating.csv (anime.csv beside it becomes the .item file), or the folder holding it"
# 'rating' is already an .inter column; RecBole wants field names unique across files
ITEM_HEADER = ("item_id:token", "name:token_seq", "genre:token_seq", "type:token",
               "episodes:float", "avg_rating:float", "members:float")


@dataclass(frozen=True)
class Fingerprint:
    """Size in bytes and SHA-256 of a published file."""
    size: int
    sha256: str


#: Kaggle's rating.csv (CooperUnion, 2016), as two independent public sources give it
#: (see ../shared/data/anime/README.md): 7,813,737 rows, 73,515 users
PUBLISHED_RATINGS = Fingerprint(111_404_899,
                                "f2cf790539cff9c7ac462d546381493a5748fc22bedaaf3fbf32d2e10294ab62")


def published_verdict(path):
    """One line saying whether ``path`` is the published ``rating.csv``; None for other names.

    The size decides first, so that a different file is never read twice; the
    hash is computed only for a file of the published size.
    """
    if os.path.basename(path) != "rating.csv":
        return None  # the user's own file: nothing to compare it with
    size, published = os.path.getsize(path), PUBLISHED_RATINGS
    mismatch = ("it is converted, but results on it will not match published Anime numbers "
                "(the paper's, or others' on Kaggle's file)")
    if size != published.size:
        return (f"{path} is not the published rating.csv ({size:,} bytes; the published one has "
                f"{published.size:,}): a part or another version; {mismatch}")
    actual = file_digest(path)
    if actual != published.sha256:
        return (f"{path} is not the published rating.csv: the same size ({size:,} bytes) but "
                f"SHA-256 {actual}, not {published.sha256} (a damaged or edited copy); {mismatch}")
    return f"{path} is the published rating.csv ({size:,} bytes, SHA-256 matches Kaggle's file)"


def locate(input_path):
    """The (rating.csv, anime.csv or None) paths for a file or folder input."""
    path = os.fspath(input_path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    ratings = os.path.join(path, "rating.csv") if os.path.isdir(path) else path
    anime = os.path.join(folder, "anime.csv")
    return ratings, (anime if os.path.isfile(anime) else None)


def convert(input_path, output_dir, name="anime", drop_unrated=False):
    """Write ``<output_dir>/<name>/<name>.inter`` and ``.item``; -1 ratings dropped if asked."""
    ratings, anime = locate(input_path)
    with DatasetWriter(output_dir, name) as out:
        for number, text in iter_lines(ratings, RATINGS_FORMAT):
            if number == 1 and text.strip().replace(" ", "") == RATINGS_HEADER:
                continue
            fields = text.split(",")
            if len(fields) != 3:
                raise ConversionError(ratings, f"{len(fields)} comma-separated fields instead of 3",
                                      RATINGS_FORMAT, number)
            user = parse_int(fields[0], "user_id", ratings, number, RATINGS_FORMAT)
            item = parse_int(fields[1], "anime_id", ratings, number, RATINGS_FORMAT)
            rating = parse_float(fields[2], "rating", ratings, number, RATINGS_FORMAT)
            if drop_unrated and rating == -1:
                continue
            out.inter.write_row((str(user), str(item), format_number(rating), str(number)))
        if out.inter.rows == 0:
            raise ConversionError(ratings, "no interactions left (only a header, or only -1 "
                                  "ratings with --drop-unrated)", RATINGS_FORMAT, 2)
        if anime is not None:
            _write_anime(anime, out.open_item(ITEM_HEADER))
    # said after a successful conversion only: a failing one has its own one-line error
    verdict = published_verdict(ratings)
    if verdict is not None:
        print(f"note: {verdict}", file=sys.stderr)
    return out


def _write_anime(path, item_file):
    # item descriptions only: a cut last row (a short member count) is worth a warning, not a refusal
    for number, text in iter_lines(path, ANIME_FORMAT, final_line_break="warn"):
        try:
            fields = next(csv.reader([text]))
        except csv.Error as error:
            raise ConversionError(path, f"broken CSV ({error})", ANIME_FORMAT, number) from None
        if number == 1 and ",".join(fields) == ANIME_HEADER:
            continue
        if len(fields) != 7:
            raise ConversionError(path, f"{len(fields)} CSV fields instead of 7", ANIME_FORMAT, number)
        item = parse_int(fields[0], "anime_id", path, number, ANIME_FORMAT)
        name = " ".join(fields[1].split())
        # token_seq splits on spaces: multi-word genres ("Slice of Life") become one token
        genres = " ".join("_".join(g.split()) for g in fields[2].split(",") if g.strip())
        numbers = [_optional_number(v, what, path, number)
                   for v, what in zip(fields[4:], ("episodes", "rating", "members"))]
        item_file.write_row((str(item), name, genres, "_".join(fields[3].split()), *numbers))


def _optional_number(text, what, path, number):
    """A number as text, or empty (RecBole's missing value) for '' and 'Unknown'."""
    text = text.strip()
    if text in ("", "Unknown"):
        return ""
    return format_number(parse_float(text, what, path, number, ANIME_FORMAT))
