"""Atomic-file converters: exact output per input format, all-or-nothing failure, streaming, CLI."""

import gzip
import io
import json
import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from conftest import HEADER, SHARED_DATA, read_rows, snapshot, write
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.datatools.cli import main
from recbole_awrsr.datatools.convert import convert, source

# ---------------------------------------------------------------- ML-1M

RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
MOVIES_DAT = ("661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
              "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n").encode("latin-1") + \
    "73::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1")
ML_INTER = [HEADER, "1\t1193\t5\t978300760", "1\t661\t3\t978302109", "2\t1193\t4\t978298413"]
ML_ITEM = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq",
           "661\tJames and the Giant Peach\t1996\tAnimation Children's Musical",
           "1193\tOne Flew Over the Cuckoo's Nest\t1975\tDrama",
           "73\tMisérables, Les\t1995\tDrama Musical"]


def _ml1m_folder(root):
    write(root / "ml-1m" / "ratings.dat", RATINGS_DAT)
    write(root / "ml-1m" / "movies.dat", MOVIES_DAT)
    return root / "ml-1m"


@pytest.mark.parametrize("form", ["file", "folder", "zip"])
def test_ml1m_converts_file_folder_and_zip_to_the_same_rows(tmp_path, form):
    folder = _ml1m_folder(tmp_path / "raw")
    if form == "file":
        given = folder / "ratings.dat"
    elif form == "folder":
        given = folder
    else:
        given = tmp_path / "ml-1m.zip"
        with zipfile.ZipFile(given, "w") as archive:
            archive.write(folder / "ratings.dat", "ml-1m/ratings.dat")
            archive.write(folder / "movies.dat", "ml-1m/movies.dat")
    assert main(["convert", "ml-1m", str(given)]) == 0
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == ML_INTER
    assert read_rows("dataset_atomic/ml-1m/ml-1m.item") == ML_ITEM
    assert sorted(os.listdir("dataset_atomic/ml-1m")) == ["ml-1m.inter", "ml-1m.item"]


def test_console_script_dispatches_convert_and_honours_output_dir(tmp_path, capsys):
    ratings = write(tmp_path / "raw" / "ratings.dat", RATINGS_DAT)
    assert cli_main(["convert", "ml-1m", str(ratings), "--output-dir", "elsewhere"]) == 0
    assert read_rows("elsewhere/ml-1m/ml-1m.inter") == ML_INTER
    assert not Path("elsewhere/ml-1m/ml-1m.item").exists()  # no movies.dat beside it
    out = capsys.readouterr().out
    assert "3 interactions" in out and "--data_path=elsewhere" in out



def test_ml1m_item_file_leaves_what_recbole_loads_unchanged(tmp_path):
    """Training's config loads only the .inter columns, so the .item file (with movies that
    nobody rated) changes neither the items nor the interactions RecBole builds."""
    users, movies = range(1, 7), (661, 1193, 73, 10, 20, 30)
    ratings = "".join(f"{u}::{m}::4::{1000 * u + k}\n" for u in users for k, m in enumerate(movies))
    extra = "10::Ten (1990)::Drama\n20::Twenty (1991)::Comedy\n30::Thirty (1992)::Drama\n" \
            "9999::Never Rated (1999)::Horror\n"
    folder = tmp_path / "raw" / "ml-1m"
    write(folder / "ratings.dat", ratings)
    write(folder / "movies.dat", MOVIES_DAT + extra.encode("latin-1"))
    assert main(["convert", "ml-1m", str(folder)]) == 0
    assert read_rows("dataset_atomic/ml-1m/ml-1m.item")[-1] == "9999\tNever Rated\t1999\tHorror"
    with_item = _recbole_counts("ml-1m")
    os.remove("dataset_atomic/ml-1m/ml-1m.item")
    assert with_item == _recbole_counts("ml-1m") == (6, 6, 36)


def test_real_movies_dat_gives_every_title_in_utf8(tmp_path):
    movies = _real("ml-1m/movies.dat")
    folder = tmp_path / "raw"
    write(folder / "ratings.dat", RATINGS_DAT)
    write(folder / "movies.dat", movies.read_bytes())
    assert main(["convert", "ml-1m", str(folder)]) == 0
    rows = read_rows("dataset_atomic/ml-1m/ml-1m.item")  # UTF-8, or read_rows fails
    assert rows[0] == ML_ITEM[0] and len(rows) == 1 + 3_883
    assert rows[1] == "1\tToy Story\t1995\tAnimation Children's Comedy"
    assert "73\tMisérables, Les\t1995\tDrama Musical" in rows
    assert "1001\tAssociate, The (L'Associe)\t1982\tComedy" in rows  # no space before the year
    fields = [row.split("\t") for row in rows[1:]]
    assert all(len(f) == 4 and f[1] and f[2].isdigit() and f[3] for f in fields)
    assert len({f[0] for f in fields}) == 3_883

# ---------------------------------------------------------------- Amazon

def test_amazon_ratings_csv(tmp_path):
    csv_file = write(tmp_path / "ratings_Beauty.csv",
                     "A39HTATAQ9V7YF,0205616461,5.0,1369699200\nA3JM6GV9MNOF9X,0558925278,3.0,1355443200\n")
    assert main(["convert", "beauty", str(csv_file)]) == 0
    assert read_rows("dataset_atomic/beauty/beauty.inter") == [
        HEADER, "A39HTATAQ9V7YF\t0205616461\t5\t1369699200", "A3JM6GV9MNOF9X\t0558925278\t3\t1355443200"]


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_amazon_reviews_json_and_gzip(tmp_path, suffix):
    reviews = [{"reviewerID": "A1YJEY40YUW4SE", "asin": "7806397051", "overall": 1.0,
                "unixReviewTime": 1391040000, "reviewText": "Very oily\tand creamy."},
               {"reviewerID": "A60XNB876KYML", "asin": "7806397051", "overall": 4.5,
                "unixReviewTime": 1397779200}]
    text = "".join(json.dumps(r) + "\n" for r in reviews).encode()
    path = tmp_path / f"reviews_Sports_and_Outdoors_5{suffix}"
    write(path, gzip.compress(text) if suffix.endswith(".gz") else text)
    assert main(["convert", "sports", str(path)]) == 0
    assert read_rows("dataset_atomic/sports/sports.inter") == [
        HEADER, "A1YJEY40YUW4SE\t7806397051\t1\t1391040000", "A60XNB876KYML\t7806397051\t4.5\t1397779200"]


def test_sequence_file_order_becomes_increasing_timestamps(tmp_path):
    seq = write(tmp_path / "Beauty.txt", "1 1 2 3\n\n2 4 1\n")
    assert main(["convert", "beauty", str(seq)]) == 0
    assert read_rows("dataset_atomic/beauty/beauty.inter") == [
        HEADER, "1\t1\t1\t1", "1\t2\t1\t2", "1\t3\t1\t3", "2\t4\t1\t1", "2\t1\t1\t2"]


# ---------------------------------------------------------------- Anime and pairs

RATING_CSV = "user_id,anime_id,rating\n1,20,-1\n1,24,8\n2,20,10\n"
ANIME_CSV = ('anime_id,name,genre,type,episodes,rating,members\n'
             '20,Naruto,"Action, Comedy, Slice of Life",TV,220,7.81,683297\n'
             '24,School Rumble,"Comedy, Romance",TV,Unknown,,178553\n')
ANIME_ITEM = ["item_id:token\tname:token_seq\tgenre:token_seq\ttype:token\tepisodes:float\t"
              "avg_rating:float\tmembers:float",
              "20\tNaruto\tAction Comedy Slice_of_Life\tTV\t220\t7.81\t683297",
              "24\tSchool Rumble\tComedy Romance\tTV\t\t\t178553"]


def test_anime_keeps_unrated_by_default_with_line_numbers_as_timestamps(tmp_path):
    write(tmp_path / "anime" / "anime.csv", ANIME_CSV)
    ratings = write(tmp_path / "anime" / "rating.csv", RATING_CSV)
    assert main(["convert", "anime", str(ratings)]) == 0
    assert read_rows("dataset_atomic/anime/anime.inter") == [
        HEADER, "1\t20\t-1\t2", "1\t24\t8\t3", "2\t20\t10\t4"]
    assert read_rows("dataset_atomic/anime/anime.item") == ANIME_ITEM


def test_anime_drop_unrated_flag_from_folder(tmp_path):
    write(tmp_path / "anime" / "anime.csv", ANIME_CSV)
    write(tmp_path / "anime" / "rating.csv", RATING_CSV)
    assert main(["convert", "anime", str(tmp_path / "anime"), "--drop-unrated"]) == 0
    assert read_rows("dataset_atomic/anime/anime.inter") == [HEADER, "1\t24\t8\t3", "2\t20\t10\t4"]


def test_pairs_line_numbers_are_timestamps_and_name_is_chosen(tmp_path):
    pairs = write(tmp_path / "data.txt", "3 7\n1 7\n\n3 8\n")
    assert main(["convert", "pairs", str(pairs), "--name", "yelp"]) == 0
    assert read_rows("dataset_atomic/yelp/yelp.inter") == [
        HEADER, "3\t7\t1\t1", "1\t7\t1\t2", "3\t8\t1\t4"]


# ---------------------------------------------------------------- bad input

BAD_INPUTS = [
    # dataset, file name, content, fragments the one error message must contain
    ("ml-1m", "ratings.dat", "1::1::5::1\n1::2::5\n", ["ratings.dat", "line 2", "3 '::'-separated fields",
                                                      "UserID::MovieID::Rating::Timestamp"]),
    ("ml-1m", "ratings.dat", "1::1::5::1\n1::2::5::2\nx::3::5::3\n", ["line 3", "UserID 'x'", "integer"]),
    ("ml-1m", "ratings.dat", "1::1::5::yesterday\n", ["line 1", "Timestamp 'yesterday'"]),
    ("ml-1m", "ratings.dat", b"1::1::5::1\n1::\xff2::5::2\n", ["line 2", "not valid utf-8"]),
    ("ml-1m", "ratings.dat", "", ["ratings.dat", "line 1", "empty"]),
    ("ml-1m", "ml-1m.zip", b"PK not really a zip", ["ml-1m.zip", "not a readable zip archive",
                                                     "ml-1m.zip"]),
    ("ml-1m", "ratings.dat", "\n\n", ["line 1", "empty"]),
    ("beauty", "reviews_Beauty_5.json", '{"reviewerID": "A", "asin": "B", "overall": 5, '
     '"unixReviewTime": 1}\n{"reviewerID": "A", "asin"\n', ["reviews_Beauty_5.json", "line 2",
                                                          "broken JSON", "reviewerID, asin"]),
    ("beauty", "reviews_Beauty_5.json", '{"reviewerID": "A", "asin": "B", "overall": 5}\n',
     ["line 1", "no unixReviewTime"]),
    ("beauty", "reviews_Beauty_5.json.gz", gzip.compress(
        b'{"reviewerID": "A", "asin": "B", "overall": 5, "unixReviewTime": 1}\n' * 50)[:-12],
     ["reviews_Beauty_5.json.gz", "cannot be read"]),
    ("beauty", "ratings_Beauty.csv", "A,B,5.0,1\nA,C,5.0\n", ["ratings_Beauty.csv", "line 2",
                                                              "3 comma-separated fields",
                                                              "user,item,rating,timestamp"]),
    ("beauty", "ratings_Beauty.csv", "A,B,five,1\n", ["line 1", "rating 'five' is not a number"]),
    ("beauty", "Beauty.txt", "1 2 3\n2\n", ["Beauty.txt", "line 2", "without any item",
                                             "user item item"]),
    ("anime", "rating.csv", "user_id,anime_id,rating\n1,2,3\n1;2;3\n", ["rating.csv", "line 3",
                                                                       "1 comma-separated"]),
    ("anime", "rating.csv", "user_id,anime_id,rating\n", ["rating.csv", "no interactions"]),
    ("pairs", "pairs.txt", "1 2\n1 2 3\n", ["pairs.txt", "line 2", "3 fields instead of 2", "'user item'"]),
    ("pairs", "pairs.txt", "1 2\nu1 2\n", ["line 2", "user id 'u1'"]),
]


def _convert_failing(argv, capsys):
    """Run a conversion that must fail; return its one error line."""
    code = cli_main(["data", *argv])
    captured = capsys.readouterr()
    assert code == 2
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert "Traceback" not in captured.err and captured.out == ""
    return message


def _older_output():
    """A pre-existing conversion in the output folder, which a failure must not touch."""
    for name in ("ml-1m", "beauty", "anime", "pairs"):
        write(f"dataset_atomic/{name}/{name}.inter", f"{HEADER}\n9\t9\t1\t1\n")
    write("dataset_atomic/ml-1m/ml-1m.item", "item_id:token\n9\n")
    return snapshot("dataset_atomic")


@pytest.mark.parametrize("dataset,filename,content,fragments", BAD_INPUTS,
                         ids=[f"{c[0]}-{c[3][1]}" for c in BAD_INPUTS])
def test_bad_input_fails_with_one_message_and_leaves_output_unchanged(
        tmp_path, capsys, dataset, filename, content, fragments):
    raw = write(tmp_path / "raw" / filename, content)
    before = _older_output()
    message = _convert_failing(["convert", dataset, str(raw)], capsys)
    for fragment in fragments:
        assert fragment in message
    assert snapshot("dataset_atomic") == before


def test_bad_movies_file_after_good_ratings_publishes_neither(tmp_path, capsys):
    write(tmp_path / "ml-1m" / "ratings.dat", RATINGS_DAT)
    write(tmp_path / "ml-1m" / "movies.dat", "1::Toy Story (1995)::Animation\n2::Jumanji (1995)\n")
    before = _older_output()
    message = _convert_failing(["convert", "ml-1m", str(tmp_path / "ml-1m")], capsys)
    assert "movies.dat, line 2" in message and "MovieID::Title::Genre" in message
    assert snapshot("dataset_atomic") == before


def test_failure_into_a_new_output_folder_creates_nothing(tmp_path, capsys):
    raw = write(tmp_path / "ratings.dat", "1::1::5::1\nbroken\n")
    _convert_failing(["convert", "ml-1m", str(raw), "--output-dir", "new/atomic"], capsys)
    assert not Path("new").exists()


def test_missing_file_and_unknown_dataset(tmp_path, capsys):
    before = _older_output()
    message = _convert_failing(["convert", "ml-1m", str(tmp_path / "nowhere" / "ratings.dat")], capsys)
    assert "nowhere/ratings.dat: no such file" in message and "or the official ml-1m.zip" in message
    message = _convert_failing(["convert", "netflix", str(tmp_path)], capsys)
    assert "'netflix'" in message and "ml-1m, anime, pairs" in message and "beauty" in message
    assert snapshot("dataset_atomic") == before


def test_reconversion_replaces_older_output_and_drops_a_stale_item_file(tmp_path):
    _older_output()
    ratings = write(tmp_path / "raw" / "ratings.dat", RATINGS_DAT)  # no movies.dat beside it
    assert main(["convert", "ml-1m", str(ratings)]) == 0
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == ML_INTER
    assert os.listdir("dataset_atomic/ml-1m") == ["ml-1m.inter"]


# ---------------------------------------------------------------- streaming

def test_conversion_memory_does_not_grow_with_the_input(tmp_path):
    lines = 200_000
    ratings = tmp_path / "ratings.dat"
    with open(ratings, "w") as handle:
        for i in range(lines):
            handle.write(f"{i % 5000 + 1}::{i % 3000 + 1}::{i % 5 + 1}::{978300000 + i}\n")
    size = ratings.stat().st_size
    tracemalloc.start()
    try:
        out = convert("ml-1m", ratings, "dataset_atomic")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.inter.rows == lines
    # reading the file into a list of strings would take several times its size
    assert size > 4_000_000 and peak < 1_000_000, (size, peak)


def test_progress_bar_on_long_inputs_when_stderr_is_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(source.sys, "stderr", terminal)
    monkeypatch.setattr(source, "PROGRESS_MIN_BYTES", 10)
    monkeypatch.setattr(source, "PROGRESS_EVERY", 2)
    pairs = write(tmp_path / "pairs.txt", "".join(f"{i} {i}\n" for i in range(1, 11)))
    convert("pairs", pairs, "dataset_atomic")
    assert "pairs.txt" in terminal.getvalue() and "10 lines" in terminal.getvalue()


# ---------------------------------------------------------------- real data

def _real(relative):
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing")
    return path


def _recbole_counts(dataset):
    import warnings

    from recbole_awrsr import Config, create_dataset

    config = Config(model="SASRec", dataset=dataset,
                    config_dict={"data_path": "dataset_atomic", "state": "ERROR"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        data = create_dataset(config)
    return data.user_num - 1, data.item_num - 1, data.inter_num


def test_real_ml1m_converts_and_5core_gives_the_paper_counts():
    ratings = _real("ml-1m/ratings.dat")
    assert main(["convert", "ml-1m", str(ratings)]) == 0
    rows = 0
    with open("dataset_atomic/ml-1m/ml-1m.inter") as handle:
        assert next(handle).rstrip("\n") == HEADER
        assert next(handle).rstrip("\n") == "1\t1193\t5\t978300760"
        rows = 1 + sum(1 for _ in handle)
    assert rows == 1_000_209
    assert len(read_rows("dataset_atomic/ml-1m/ml-1m.item")) == 1 + 3_883
    assert _recbole_counts("ml-1m") == (6_040, 3_416, 999_611)


def test_real_beauty_sequence_file_gives_the_5core_counts(capsys):
    seq = _real("beauty/Beauty.txt")
    assert main(["convert", "beauty", str(seq)]) == 0
    assert _recbole_counts("beauty") == (22_363, 12_101, 198_502)
    capsys.readouterr()
    assert main(["stats", "beauty"]) == 0
    out = capsys.readouterr().out
    for fragment in ("22,363", "12,101", "198,502", "52.0k", "57.2k", "0.4M"):
        assert fragment in out


# ---------------------------------------------------------------- download

def _ml1m_zip_bytes(tmp_path):
    folder = _ml1m_folder(tmp_path / "zipsrc")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(folder / "ratings.dat", "ml-1m/ratings.dat")
        archive.write(folder / "movies.dat", "ml-1m/movies.dat")
    return buffer.getvalue()


def _serving(payload, calls):
    """An ``urlopen`` stand-in that serves ``payload`` and records the URLs asked for."""
    def opener(url, timeout):
        calls.append((url, timeout))
        return io.BytesIO(payload)
    return opener


def test_download_without_network_fails_fast_with_url_and_manual_steps(monkeypatch, capsys):
    from recbole_awrsr.datatools import download

    # a closed local port: the real urllib path, refused at once, network or not
    monkeypatch.setitem(download.ARCHIVES, "ml-1m",
                        download.Archive("http://127.0.0.1:9/ml-1m.zip", "ml-1m.zip"))
    start = time.perf_counter()
    message = _convert_failing(["download", "ml-1m"], capsys)
    assert time.perf_counter() - start < 5
    assert "cannot download http://127.0.0.1:9/ml-1m.zip" in message
    assert "Manual steps" in message and "ml-1m.zip" in message
    assert "`python -m recbole_awrsr.data convert ml-1m dataset_atomic/ml-1m/ml-1m.zip" in message
    assert snapshot("dataset_atomic") is None  # nothing created, no partial archive


def test_download_official_url_uses_a_short_timeout(monkeypatch, capsys):
    import urllib.error

    from recbole_awrsr.datatools import download

    calls = []

    def offline(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    message = _convert_failing(["download", "ml-1m"], capsys)
    assert calls == [("https://files.grouplens.org/datasets/movielens/ml-1m.zip", 5.0)]
    assert "cannot download https://files.grouplens.org/datasets/movielens/ml-1m.zip " \
           "(Name or service not known)" in message


def test_download_without_pin_stops_with_the_hash_then_converts_with_sha256(tmp_path, capsys,
                                                                           monkeypatch):
    import hashlib

    from recbole_awrsr.datatools import download

    url = download.ARCHIVES["ml-1m"].url
    monkeypatch.setitem(download.ARCHIVES, "ml-1m", download.Archive(url, "ml-1m.zip"))
    payload = _ml1m_zip_bytes(tmp_path)
    digest = hashlib.sha256(payload).hexdigest()
    calls = []
    with pytest.raises(download.DownloadError) as failure:
        download.download("ml-1m", opener=_serving(payload, calls))
    assert f"Its SHA-256 is {digest}" in str(failure.value) and f"--sha256 {digest}" in str(failure.value)
    assert not Path("dataset_atomic/ml-1m/ml-1m.inter").exists()
    # the re-run with the confirmed hash converts the kept archive without fetching again
    assert main(["download", "ml-1m", "--sha256", digest]) == 0
    assert len(calls) == 1
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == ML_INTER
    assert read_rows("dataset_atomic/ml-1m/ml-1m.item") == ML_ITEM


def test_download_checks_the_publishers_md5(tmp_path, monkeypatch):
    import hashlib

    from recbole_awrsr.datatools import download

    assert download.ARCHIVES["ml-1m"].md5 == "c4d9eecfca2ab87c1945afe126590906"
    payload = _ml1m_zip_bytes(tmp_path)
    # a different archive than GroupLens's: refused and deleted
    with pytest.raises(download.DownloadError, match="expected c4d9eecf") as failure:
        download.download("ml-1m", opener=_serving(payload, []))
    assert "the file was deleted" in str(failure.value)
    assert os.listdir("dataset_atomic/ml-1m") == []
    # the same bytes with their own MD5 pinned: converted without a SHA-256
    url = download.ARCHIVES["ml-1m"].url
    monkeypatch.setitem(download.ARCHIVES, "ml-1m", download.Archive(
        url, "ml-1m.zip", md5=hashlib.md5(payload).hexdigest()))
    download.download("ml-1m", opener=_serving(payload, []))
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == ML_INTER


def test_download_with_wrong_pinned_hash_deletes_the_file(tmp_path, monkeypatch):
    from recbole_awrsr.datatools import download

    url = download.ARCHIVES["ml-1m"].url
    monkeypatch.setitem(download.ARCHIVES, "ml-1m", download.Archive(url, "ml-1m.zip", "0" * 64))
    with pytest.raises(download.DownloadError, match="expected 0000") as failure:
        download.download("ml-1m", opener=_serving(_ml1m_zip_bytes(tmp_path), []))
    assert "the file was deleted" in str(failure.value)
    assert os.listdir("dataset_atomic/ml-1m") == []


def test_download_of_datasets_without_archive_prints_manual_steps(capsys):
    message = _convert_failing(["download", "anime"], capsys)
    assert "kaggle.com" in message and "rating.csv" in message
    assert "convert anime dataset_atomic/anime/rating.csv" in message
    message = _convert_failing(["download", "beauty"], capsys)
    assert "reviews_Beauty_5.json.gz" in message and "convert beauty" in message
