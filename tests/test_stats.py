"""``stats``: counts after RecBole's filtering through the dataset YAML, and the missing-files message."""

from pathlib import Path

import pytest

from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.datatools.cli import main
from recbole_awrsr.datatools.stats import dataset_stats, format_stats


def _pairs_file(folder):
    # users 1-6 each see items 1-5 (30 rows); user 1 also sees item 99 (1 row: filtered, < 5),
    # user 7 sees items 1-2 (2 rows: filtered); 5-core leaves 6 users, 5 items, 30 rows
    lines = [f"{u} {i}" for u in range(1, 7) for i in range(1, 6)] + ["1 99", "7 1", "7 2"]
    path = Path(folder) / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stats_counts_after_5core_filtering_of_the_dataset_yaml(tmp_path, capsys):
    assert main(["convert", "pairs", str(_pairs_file(tmp_path))]) == 0
    stats = dataset_stats("pairs")
    assert (stats["users"], stats["items"], stats["interactions"]) == (6, 5, 30)
    assert stats["density"] == pytest.approx(1.0)
    capsys.readouterr()
    assert main(["stats", "pairs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[2:6]] == [  # no Table 1 figures for pairs: '-'
        ["users", "6", "-"], ["items", "5", "-"], ["interactions", "30", "-"],
        ["density", "100.0000%", "-"]]


def test_stats_reads_another_data_path(tmp_path, capsys):
    assert main(["convert", "pairs", str(_pairs_file(tmp_path)), "--output-dir", "other",
                 "--name", "mine"]) == 0
    # 'mine' has no properties/dataset/mine.yaml, hence no 5-core filtering: all 33 rows stay
    assert dataset_stats("mine", data_path="other")["interactions"] == 33
    assert dataset_stats("mine", data_path="other", config_dict={
        "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)"})["interactions"] == 30
    capsys.readouterr()
    assert main(["stats", "mine", "--data-path", "other"]) == 0
    assert "interactions           33" in capsys.readouterr().out


def test_format_stats_puts_the_paper_figures_beside():
    text = format_stats("ml-1m", {"users": 6040, "items": 3416, "interactions": 999611,
                                  "density": 999611 / (6040 * 3416)})
    lines = text.splitlines()
    assert lines[2].split() == ["users", "6,040", "6.0k"]
    assert lines[3].split() == ["items", "3,416", "3.4k"]
    assert lines[4].split() == ["interactions", "999,611", "1.0M"]
    assert lines[5].split() == ["density", "4.8448%", "~4.9020%"]


def test_missing_atomic_files_name_the_convert_command_of_this_cli(capsys):
    from recbole_awrsr import Config, create_dataset

    config = Config(model="SASRec", dataset="ml-1m", config_dict={"state": "ERROR"})
    with pytest.raises(FileNotFoundError) as missing:
        create_dataset(config)
    assert ("`python -m recbole_awrsr.data convert ml-1m RAW_FILE --output-dir dataset_atomic`"
            in str(missing.value))
    assert cli_main(["data", "stats", "anime"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Dataset 'anime' has no atomic files")
    assert "python -m recbole_awrsr.data convert anime" in err
