"""The one command line: every subcommand reports a mistake the same way (one line, status 2)."""

import subprocess
import sys

import pytest

from recbole_awrsr import errors
from recbole_awrsr.cli import main
from recbole_awrsr.errors import ParamsFileError

#: (argv, a fragment of the one error line): a typical mistake for each subcommand
MISTAKES = [
    (["--model=NoSuchModel", "--no-save"], "Unknown model 'NoSuchModel'"),
    (["run", "--model=NoSuchModel", "--no-save"], "Unknown model 'NoSuchModel'"),
    (["data", "convert", "ml-1m", "no-such-ratings.dat"], "no-such-ratings.dat: no such file"),
    (["convert", "nosuch", "raw.txt"], "dataset name 'nosuch'"),
    (["data", "stats", "nosuch"], "Dataset 'nosuch' has no atomic files"),
    (["analysis", "topn", "--model-files", "nowhere.pth", "--out", "top"],
     "no checkpoint file 'nowhere.pth'"),
    (["analysis", "attention", "--model-file", "nowhere.pth", "--out", "out"],
     "no checkpoint file 'nowhere.pth'"),
    (["compare", "--datasets", "tiny", "--config", "nowhere.yaml", "--out", "results"],
     "--config: file not found: "),
    (["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=nowhere.hyper"],
     "cannot read params file nowhere.hyper"),
]


@pytest.mark.parametrize("argv, fragment", MISTAKES, ids=[" ".join(a[:2]) for a, _ in MISTAKES])
def test_every_subcommand_reports_a_mistake_in_one_line_with_status_2(argv, fragment, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and fragment in lines[0]


def test_module_doors_go_through_the_same_rule():
    """``python -m recbole_awrsr.data`` (the documented spelling) and ``-m ...compare``."""
    for argv in (["-m", "recbole_awrsr.data", "convert", "nosuch", "raw.txt"],
                 ["-m", "recbole_awrsr.compare", "--datasets", "tiny", "--config", "nowhere.yaml"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch, capsys):
    def mistake(argv):
        raise errors.ConfigurationError("first line\n  second line")

    monkeypatch.setattr("recbole_awrsr.cli.run_main", mistake)
    assert main(["--model=SASRecAWR"]) == 2
    assert capsys.readouterr().err == "error: first line second line\n"


def test_one_error_hierarchy():
    for cls in (errors.ConfigurationError, errors.MissingDatasetError, errors.ConversionError,
                errors.DownloadError, errors.AnalysisError, ParamsFileError):
        assert issubclass(cls, errors.AWRSRError), cls
    # callers (and tests) that catch ValueError or FileNotFoundError keep working
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.AnalysisError, ValueError)
    assert issubclass(errors.MissingDatasetError, FileNotFoundError)


def test_a_bug_is_not_a_mistake(monkeypatch):
    """Anything but an AWRSRError keeps its traceback (it is not the user's to fix)."""
    def bug(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr("recbole_awrsr.cli.run_main", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main([])
