"""The data tools against a hostile-but-fair user (issue 17, sections 2 and 3): each defect the
issue lists, reproduced, and the one-line refusal or notice that replaces it."""

import os
from pathlib import Path

import pytest

from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.datatools.cli import main

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def write(path, data):
    """Write text (UTF-8) or bytes to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def read_rows(path):
    """Lines of an atomic file, header included, without line breaks."""
    return Path(path).read_text(encoding="utf-8").splitlines()


def snapshot(folder):
    """Everything under ``folder`` (relative path -> bytes), or None when it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


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
