"""MovieLens-1M: GroupLens' ``ratings.dat`` (and ``movies.dat``), as a file, a folder or ``ml-1m.zip``."""

import os
import re
import zipfile

from recbole_awrsr.datatools.convert.source import (
    Source, format_number, iter_lines, parse_float, parse_int,
)
from recbole_awrsr.datatools.convert.writer import DatasetWriter
from recbole_awrsr.errors import ConversionError

RATINGS_FORMAT = "'UserID::MovieID::Rating::Timestamp' (integers, rating a number), as in ml-1m/ratings.dat"
MOVIES_FORMAT = "'MovieID::Title::Genre|Genre|...', as in ml-1m/movies.dat"
INPUT_FORMAT = "ml-1m/ratings.dat, the ml-1m folder holding it, or the official ml-1m.zip"
#: the same item columns as RecBole's published ml-1m atomic files
ITEM_HEADER = ("item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq")
#: "Title (1995)"; one real title has no space before its year: "Associate, The (L'Associe)(1982)"
_TITLE_YEAR = re.compile(r"^(.*?) ?\((\d{4})\)$")


def locate(input_path):
    """The (ratings, movies or None) sources inside a ratings file, folder or zip archive."""
    path = os.fspath(input_path)
    if os.path.isdir(path):
        movies = os.path.join(path, "movies.dat")
        return Source(os.path.join(path, "ratings.dat")), (
            Source(movies) if os.path.isfile(movies) else None)
    if path.endswith(".zip") and os.path.isfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as error:
            raise ConversionError(path, f"is not a readable zip archive ({error})", INPUT_FORMAT) from None
        ratings = [n for n in names if os.path.basename(n) == "ratings.dat"]
        if not ratings:
            raise ConversionError(path, "holds no ratings.dat", INPUT_FORMAT)
        movies = [n for n in names if os.path.basename(n) == "movies.dat"]
        return Source(path, ratings[0]), (Source(path, movies[0]) if movies else None)
    if not os.path.exists(path):
        raise ConversionError(path, "no such file or folder", INPUT_FORMAT)
    movies = os.path.join(os.path.dirname(path), "movies.dat")
    return Source(path), (Source(movies) if os.path.isfile(movies) else None)


def convert(input_path, output_dir, name="ml-1m"):
    """Write ``<output_dir>/<name>/<name>.inter`` (and ``.item`` from movies.dat); returns the writer."""
    ratings, movies = locate(input_path)
    with DatasetWriter(output_dir, name) as out:
        for number, text in iter_lines(ratings, RATINGS_FORMAT):
            fields = text.split("::")
            if len(fields) != 4:
                raise ConversionError(ratings.name, f"{len(fields)} '::'-separated fields instead of 4",
                                      RATINGS_FORMAT, number)
            user = parse_int(fields[0], "UserID", ratings.name, number, RATINGS_FORMAT)
            item = parse_int(fields[1], "MovieID", ratings.name, number, RATINGS_FORMAT)
            rating = parse_float(fields[2], "Rating", ratings.name, number, RATINGS_FORMAT)
            stamp = parse_int(fields[3], "Timestamp", ratings.name, number, RATINGS_FORMAT)
            out.inter.write_row((str(user), str(item), format_number(rating), str(stamp)))
        if movies is not None:
            _write_movies(movies, out.open_item(ITEM_HEADER))
    return out


def _write_movies(movies, item_file):
    # GroupLens publishes movies.dat in ISO-8859-1 (e.g. "Misérables"); output is UTF-8. A copy
    # re-saved as UTF-8 read as latin-1 would give "MisÃ©rables" silently, so UTF-8 is tried
    # first: the published file is not valid UTF-8 ("é" is the lone byte 0xE9), so it falls back.
    # Item descriptions only: a cut last title is worth a warning, not a refusal.
    for number, text in iter_lines(movies, MOVIES_FORMAT, encoding=("utf-8", "latin-1"),
                                   final_line_break="warn"):
        fields = text.split("::")
        if len(fields) != 3:
            raise ConversionError(movies.name, f"{len(fields)} '::'-separated fields instead of 3",
                                  MOVIES_FORMAT, number)
        item = parse_int(fields[0], "MovieID", movies.name, number, MOVIES_FORMAT)
        title, year = fields[1].strip(), ""
        match = _TITLE_YEAR.match(title)
        if match:
            title, year = match.group(1), match.group(2)
        genres = " ".join(g.strip().replace(" ", "_") for g in fields[2].split("|") if g.strip())
        item_file.write_row((str(item), " ".join(title.split()), year, genres))
