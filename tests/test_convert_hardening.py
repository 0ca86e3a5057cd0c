"""The data tools against a hostile-but-fair user (issue 17, sections 2 and 3): each defect the
issue lists, reproduced, and the one-line refusal or notice that replaces it."""

import os
from pathlib import Path

import pytest

from conftest import HEADER, SHARED_DATA, read_rows, snapshot, write
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.datatools.cli import main

def failing(argv, capsys):
    """Run a data command that must fail; return its one ``error:`` line."""
    code = cli_main(["data", *argv])
    captured = capsys.readouterr()
    assert code == 2, captured
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message, captured.err
    assert "Traceback" not in captured.err
    return message


# ---------------------------------------------------------------- 3.4 repeated user in a sequence file

def test_sequence_file_refuses_a_user_on_two_lines_naming_both(tmp_path, capsys):
    seq = write(tmp_path / "Beauty.txt", "1 10 11\n2 20 21\n\n1 12 13\n")
    write("dataset_atomic/beauty/beauty.inter", f"{HEADER}\n9\t9\t1\t1\n")
    before = snapshot("dataset_atomic")
    message = failing(["convert", "beauty", str(seq)], capsys)
    assert "Beauty.txt, line 4" in message and "user 1" in message and "line 1" in message
    assert "one user per line" in message
    assert snapshot("dataset_atomic") == before


# ---------------------------------------------------------------- 2 generic sequence converter

def test_generic_sequence_converter_reads_any_user_item_item_file(tmp_path, capsys):
    seq = write(tmp_path / "histories.txt", "7 3 1 2\n\n8 4 1\n")
    assert cli_main(["data", "convert", "sequence", str(seq), "--name", "shop"]) == 0
    assert "dataset_atomic/shop/shop.inter (5 interactions)" in capsys.readouterr().out
    rows = read_rows("dataset_atomic/shop/shop.inter")
    assert rows == [HEADER, "7\t3\t1\t1", "7\t1\t1\t2", "7\t2\t1\t3", "8\t4\t1\t1", "8\t1\t1\t2"]
    # the same reader as the Amazon door: identical rows, and the same refusals
    assert main(["convert", "beauty", str(seq), "--format", "sequence", "--name", "viaamazon"]) == 0
    assert read_rows("dataset_atomic/viaamazon/viaamazon.inter") == rows
    repeated = write(tmp_path / "repeated.txt", "7 3\n7 4\n")
    message = failing(["convert", "sequence", str(repeated), "--name", "shop"], capsys)
    assert "repeated.txt, line 2" in message and "already on line 1" in message
    assert read_rows("dataset_atomic/shop/shop.inter") == rows


def test_generic_sequence_converter_default_name_and_its_mistakes(tmp_path, capsys):
    seq = write(tmp_path / "h.txt", "1 2 3\n")
    assert main(["convert", "sequence", str(seq)]) == 0
    assert read_rows("dataset_atomic/sequence/sequence.inter")[1:] == ["1\t2\t1\t1", "1\t3\t1\t2"]
    message = failing(["convert", "sequence", str(seq), "--format", "ratings"], capsys)
    assert "--format applies to Amazon categories only" in message
    message = failing(["download", "sequence"], capsys)
    assert "Manual steps" in message and "convert sequence" in message


# ---------------------------------------------------------------- 3.8 output-folder OS errors

PAIRS = "".join(f"{u} {i}\n" for u in range(1, 4) for i in range(1, 4))


def test_output_dir_that_is_a_file_is_one_line_naming_it(tmp_path, capsys):
    pairs = write(tmp_path / "pairs.txt", PAIRS)
    write("taken", "a file, not a folder\n")
    message = failing(["convert", "pairs", str(pairs), "--output-dir", "taken"], capsys)
    assert "taken/pairs" in message and "taken is a file, not a folder" in message
    assert Path("taken").read_text() == "a file, not a folder\n"
    write("dataset_atomic/pairs", "the dataset folder is a file\n")
    message = failing(["convert", "pairs", str(pairs)], capsys)
    assert "dataset_atomic/pairs is a file, not a folder" in message
    assert Path("dataset_atomic/pairs").read_text() == "the dataset folder is a file\n"


def test_output_file_that_cannot_be_replaced_is_one_line_and_leaves_the_rest(tmp_path, capsys):
    pairs = write(tmp_path / "pairs.txt", PAIRS)
    Path("dataset_atomic/pairs/pairs.inter").mkdir(parents=True)  # a folder where the file goes
    before = snapshot("dataset_atomic")
    message = failing(["convert", "pairs", str(pairs)], capsys)
    assert "dataset_atomic/pairs" in message and "pairs.inter" in message
    assert snapshot("dataset_atomic") == before  # no temporary file left behind


@pytest.mark.parametrize("where, name", [("makedirs", "fresh"), ("mkstemp", "pairs")])
def test_permission_denied_is_one_line_naming_the_folder(tmp_path, capsys, monkeypatch, where, name):
    import tempfile

    pairs = write(tmp_path / "pairs.txt", PAIRS)
    write("dataset_atomic/pairs/pairs.inter", f"{HEADER}\n9\t9\t1\t1\n")
    before = snapshot("dataset_atomic")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(args[0] if args else kwargs.get("dir")))

    # the tests run as root here, where chmod cannot deny anything: deny at the system call
    # (a context of its own: undoing the fixture would also undo the per-test working folder)
    with monkeypatch.context() as patch:
        patch.setattr(os if where == "makedirs" else tempfile, where, denied)
        message = failing(["convert", "pairs", str(pairs), "--name", name], capsys)
    assert f"dataset_atomic/{name}" in message and "Permission denied" in message
    assert snapshot("dataset_atomic") == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders; the system-call test above covers it")
def test_read_only_output_folder_is_one_line(tmp_path, capsys):
    pairs = write(tmp_path / "pairs.txt", PAIRS)
    folder = Path("dataset_atomic/pairs")
    write(folder / "pairs.inter", f"{HEADER}\n9\t9\t1\t1\n")
    folder.chmod(0o555)
    try:
        message = failing(["convert", "pairs", str(pairs)], capsys)
    finally:
        folder.chmod(0o755)
    assert "dataset_atomic/pairs" in message and "Permission denied" in message
    assert read_rows(folder / "pairs.inter") == [HEADER, "9\t9\t1\t1"]


# ---------------------------------------------------------------- 3.9 truncated last line

TRUNCATED = [
    # dataset, file name, content cut inside its last number, the cut line's start
    ("ml-1m", "ratings.dat", "1::1193::5::978300760\n1::661::3::97732", "1::661::3::97732"),
    ("anime", "rating.csv", "user_id,anime_id,rating\r\n1,20,-1\r\n1,24,1", "1,24,1"),
    ("pairs", "pairs.txt", "3 7\n1 7\n3 8", "3 8"),
    ("sequence", "seq.txt", "1 2 3\n2 4 5 6", "2 4 5 6"),
    ("beauty", "Beauty.txt", "1 2 3\n2 4 5 6", "2 4 5 6"),
]


@pytest.mark.parametrize("dataset, filename, content, cut", TRUNCATED,
                         ids=[f"{c[0]}-{c[1]}" for c in TRUNCATED])
def test_a_last_line_without_line_break_is_refused_as_truncated(tmp_path, capsys, dataset,
                                                                filename, content, cut):
    raw = write(tmp_path / filename, content)
    before = snapshot("dataset_atomic")
    message = failing(["convert", dataset, str(raw)], capsys)
    line = content.count("\n") + 1
    assert f"{filename}, line {line}" in message and "no line break" in message
    assert "truncated" in message and cut in message
    assert snapshot("dataset_atomic") == before
    # the same file, complete, converts
    write(raw, content + "\n")
    assert main(["convert", dataset, str(raw)]) == 0


def test_amazon_ratings_csv_without_final_line_break_converts_with_a_loud_warning(tmp_path, capsys):
    csv_file = write(tmp_path / "ratings_Beauty.csv", "A,B,5.0,1369699200\nA,C,3.0,13556")
    assert main(["convert", "beauty", str(csv_file)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and err.count("\n") == 1
    assert "ratings_Beauty.csv, line 2" in err and "no line break" in err and "A,C,3.0,13556" in err


def test_a_complete_json_review_needs_no_final_line_break(tmp_path, capsys):
    reviews = write(tmp_path / "reviews_Beauty_5.json",
                    '{"reviewerID": "A", "asin": "B", "overall": 5, "unixReviewTime": 1}')
    assert main(["convert", "beauty", str(reviews)]) == 0
    assert capsys.readouterr().err == ""


def test_item_files_without_final_line_break_warn_and_trailing_blanks_are_fine(tmp_path, capsys):
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::1193::5::978300760\n  ")  # spaces after the last break
    write(folder / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Dra")
    assert main(["convert", "ml-1m", str(folder)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "movies.dat, line 1" in err and "::Dra'" in err
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == [HEADER, "1\t1193\t5\t978300760"]


# ---------------------------------------------------------------- 3.10 stale temporaries

def _aged(path, data=b"", seconds=3600):
    """``path`` written with ``data`` and dated ``seconds`` ago, as a killed conversion leaves it."""
    import time

    write(path, data)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_stale_temporaries_of_a_killed_conversion_are_removed_and_said(tmp_path, capsys):
    folder = Path("dataset_atomic/pairs")
    stale = [_aged(folder / ".pairs.k3j2h1_0.tmp.inter", b"1\t2\t1\t1\n" * 200_000),
             _aged(folder / ".pairs.ab12cd34.tmp.item", b"item_id:token\n")]
    others = [_aged(folder / ".pairs.notes.txt"), _aged(folder / "pairs.tmp.inter"),
              _aged(folder / ".pairs.k3j2h1g0.tmp.zip"),  # a download's, not the writer's
              _aged(folder / ".other.k3j2h1g0.tmp.inter"), _aged(folder / "keep.txt")]
    pairs = write(tmp_path / "pairs.txt", PAIRS)
    assert main(["convert", "pairs", str(pairs)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "removed 2 stale temporary files" in err
    assert "dataset_atomic/pairs" in err and "1.6 MB" in err and ".pairs.k3j2h1_0.tmp.inter" in err
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    assert sorted(os.listdir(folder)) == sorted([p.name for p in others] + ["pairs.inter"])


def test_temporaries_of_a_running_conversion_are_left_alone(tmp_path, capsys):
    import time

    folder = Path("dataset_atomic/pairs")
    fresh = write(folder / ".pairs.newer000.tmp.inter", b"being written")
    later = time.time() + 60  # written after this run started
    os.utime(fresh, (later, later))
    pairs = write(tmp_path / "pairs.txt", PAIRS)
    fcntl = pytest.importorskip("fcntl")
    held = _aged(folder / ".pairs.held0000.tmp.inter", b"old, but its writer is alive")
    with open(held, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # what a live writer holds
        assert main(["convert", "pairs", str(pairs)]) == 0
    assert fresh.exists() and held.exists()
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- 3.11 download --sha256 nothex

@pytest.mark.parametrize("value", ["nothex", "0" * 63, "g" * 64, "0" * 65, " " + "0" * 64, ""])
def test_download_refuses_a_sha256_that_is_not_64_hex_digits_before_touching_the_archive(
        capsys, value):
    archive = write("dataset_atomic/ml-1m/ml-1m.zip", b"an archive fetched earlier")
    message = failing(["download", "ml-1m", "--sha256", value], capsys)
    assert f"--sha256 {value!r}" in message and "64 hexadecimal digits" in message
    assert archive.read_bytes() == b"an archive fetched earlier"
    assert os.listdir("dataset_atomic/ml-1m") == ["ml-1m.zip"]


def test_download_accepts_an_upper_case_sha256(tmp_path, capsys):
    import hashlib

    from recbole_awrsr.datatools import download
    from recbole_awrsr.errors import ConversionError

    archive = write("dataset_atomic/ml-1m/ml-1m.zip", b"not the real archive")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ConversionError, match="is not a readable zip"):
        download.download("ml-1m", sha256=digest.upper())  # hash accepted; the zip is then read


# ---------------------------------------------------------------- 3.12 encoding traps

BOM = "\ufeff"


def test_a_utf8_bom_before_the_header_is_not_data(tmp_path):
    ratings = write(tmp_path / "anime" / "rating.csv", BOM + "user_id,anime_id,rating\r\n1,20,-1\r\n1,24,8\r\n")
    assert main(["convert", "anime", str(ratings)]) == 0
    assert read_rows("dataset_atomic/anime/anime.inter") == [HEADER, "1\t20\t-1\t2", "1\t24\t8\t3"]
    dat = write(tmp_path / "ratings.dat", BOM + "1::1193::5::978300760\n")
    assert main(["convert", "ml-1m", str(dat)]) == 0
    assert read_rows("dataset_atomic/ml-1m/ml-1m.inter") == [HEADER, "1\t1193\t5\t978300760"]


def test_invisible_characters_are_visible_in_the_message(tmp_path, capsys):
    ratings = write(tmp_path / "rating.csv", "user_id,anime_id,rating\n1,2\u200b0,8\n")
    message = failing(["convert", "anime", str(ratings)], capsys)
    assert "line 2" in message and "anime_id '2\\u200b0'" in message


def test_movies_dat_resaved_as_utf8_keeps_its_titles(tmp_path):
    movies = ("73::Misérables, Les (1995)::Drama|Musical\n"
              "1001::Associate, The (L'Associe)(1982)::Comedy\n")
    for encoding, prefix in (("latin-1", ""), ("utf-8", ""), ("utf-8", BOM)):
        folder = tmp_path / encoding / prefix.encode("unicode_escape").decode()
        write(folder / "ratings.dat", "1::73::5::978300760\n")
        write(folder / "movies.dat", (prefix + movies).encode(encoding))
        assert main(["convert", "ml-1m", str(folder)]) == 0
        assert read_rows("dataset_atomic/ml-1m/ml-1m.item")[1:] == [
            "73\tMisérables, Les\t1995\tDrama Musical", "1001\tAssociate, The (L'Associe)\t1982\tComedy"]


# ---------------------------------------------------------------- 2 anime: the published rating.csv

ANIME_HEADER = b"user_id,anime_id,rating\r\n"


def _shared(relative):
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing (../shared/data beside the repo)")
    return path


def test_real_anime_tail_with_header_converts_and_is_said_not_to_be_the_published_file(
        tmp_path, capsys):
    tail = _shared("anime/rating_tail_part23.csv").read_bytes()
    ratings = write(tmp_path / "anime" / "rating.csv", ANIME_HEADER + tail)  # CRLF kept
    write(tmp_path / "anime" / "anime.csv", _shared("anime/anime.csv").read_bytes())
    assert tail.count(b"\r\n") == tail.count(b"\n") == 97_470
    assert main(["convert", "anime", str(ratings)]) == 0
    rows = read_rows("dataset_atomic/anime/anime.inter")
    assert rows[0] == HEADER and len(rows) == 1 + 97_470
    # the README's figures: first and last lines, users, anime, unrated rows
    assert rows[1:4] == ["72561\t5\t9\t2", "72561\t19\t9\t3", "72561\t24\t5\t4"]
    assert rows[-1] == "73516\t8074\t9\t97471"
    fields = [row.split("\t") for row in rows[1:]]
    assert len({f[0] for f in fields}) == 956 and len({f[1] for f in fields}) == 5_560
    assert sum(f[2] == "-1" for f in fields) == 19_319
    assert [int(f[3]) for f in fields] == list(range(2, 97_472))  # line numbers, CRLF or not
    # what dataset_atomic/README.md says of the order: each user's rows by ascending anime_id
    last = {}
    for user, item, *_ in fields:
        assert int(item) > last.get(user, -1)
        last[user] = int(item)
    assert len(read_rows("dataset_atomic/anime/anime.item")) == 1 + 12_294
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: ")
    assert f"{len(ANIME_HEADER) + len(tail):,} bytes" in err and "111,404,899" in err
    assert "not the published rating.csv" in err and "will not match" in err


def _fingerprint_of(monkeypatch, data):
    """Make ``data`` the published rating.csv for the converter, as if it were Kaggle's file."""
    import hashlib

    from recbole_awrsr.datatools.convert import anime

    monkeypatch.setattr(anime, "PUBLISHED_RATINGS",
                        anime.Fingerprint(len(data), hashlib.sha256(data).hexdigest()))


def test_the_published_rating_csv_is_recognised_by_size_then_hash(tmp_path, capsys, monkeypatch):
    data = b"user_id,anime_id,rating\r\n1,20,-1\r\n1,24,8\r\n"
    ratings = write(tmp_path / "rating.csv", data)
    _fingerprint_of(monkeypatch, data)
    assert main(["convert", "anime", str(ratings)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the published rating.csv" in err and "SHA-256" in err
    # the same size, other bytes: a damaged copy
    write(ratings, data.replace(b"8", b"9"))
    assert main(["convert", "anime", str(ratings)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the published rating.csv" in err
    assert "same size" in err and "SHA-256" in err and "will not match" in err


def test_the_hash_is_computed_only_when_the_size_matches(tmp_path, capsys, monkeypatch):
    from recbole_awrsr.datatools.convert import anime

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed a file whose size already differs")

    monkeypatch.setattr(anime, "file_digest", no_hashing)
    ratings = write(tmp_path / "rating.csv", "user_id,anime_id,rating\n1,20,-1\n")
    assert main(["convert", "anime", str(ratings)]) == 0
    assert "not the published rating.csv (32 bytes" in capsys.readouterr().err
    # a file by another name is the user's own: nothing is said about it
    other = write(tmp_path / "my_ratings.csv", "user_id,anime_id,rating\n1,20,-1\n")
    assert main(["convert", "anime", str(other)]) == 0
    assert capsys.readouterr().err == ""
