"""Bad input a hostile-but-fair user tries: each fails before any data is read, in one line."""

from pathlib import Path

import pytest

from recbole_awrsr import Config
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.errors import ConfigurationError, is_dataset_name


@pytest.mark.parametrize("name", ["..", ".", "../../../../trav", "/etc/passwd", "a/b", "a b", "", "x\\y"])
def test_dataset_names_that_are_paths_are_refused(name):
    assert not is_dataset_name(name)
    with pytest.raises(ConfigurationError, match="is not a name"):
        Config("SASRecAWR", name)


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m", "beauty", "Beauty_5.v2", "anime"])
def test_ordinary_dataset_names_pass(name):
    assert is_dataset_name(name)


def test_run_with_a_path_as_dataset_exits_2_without_writing_outside(capsys, tmp_path):
    assert cli_main(["--dataset=../../../../trav", "--epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset name '../../../../trav' is not a name") and "\n" not in err
    assert not list(Path(tmp_path).parent.glob("trav*"))


def test_convert_refuses_a_name_that_is_a_path(tmp_path, capsys):
    source = tmp_path / "pairs.txt"
    source.write_text("".join(f"{u} {i}\n" for u in range(1, 7) for i in range(1, 7)))
    out = tmp_path / "out"
    assert cli_main(["data", "convert", "pairs", str(source), "--output-dir", str(out),
                     "--name", ".."]) == 2
    assert "--name '..' is not a dataset name" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.inter"))
