"""``recbole-awrsr report``: the choice table by hand, and the document's generated blocks."""

import os

import pandas as pd
import pytest

from recbole_awrsr import cli
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.report import fill_blocks, report
from recbole_awrsr.tables import choice_markdown

VARIANT = "refine_init=identity refine_input=rownorm"


def choice_frame():
    """none (seeds 1-2), simple V0 and simple V2 (seeds 1-2), one none run under another key."""
    rows = []
    for mechanism, variant, scores in (("none", "", [0.10, 0.12]), ("simple", "", [0.09, 0.10]),
                                       ("simple", VARIANT, [0.13, 0.12]),
                                       ("none", "enable_amp=True", [0.05])):
        for seed, score in enumerate(scores, start=1):
            rows.append({"dataset": "d", "model": "SASRecAWR", "mechanism": mechanism,
                         "layers": "2", "variant": variant, "seed": str(seed),
                         "valid_ndcg@10": score, "test_ndcg@5": score,
                         "test_recall@1": score, "test_recall@5": score})
    # a RecBole baseline is never a choice
    rows.append({**rows[0], "model": "GRU4Rec", "mechanism": "-", "valid_ndcg@10": 0.9})
    return pd.DataFrame(rows)


def table_rows(text):
    return [[part.strip() for part in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rank")]


def test_choice_table_ranks_by_mean_validation_score_against_none_of_the_same_settings():
    text = choice_markdown(choice_frame())
    rows = table_rows(text)
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    # V2: mean 0.125 against none's 0.11 (the enable_amp none run is another setting): +13.6 %
    assert rows[0][1] == f"**SASRecAWR + simple [{VARIANT}]**"
    assert rows[0][2:] == ["2", "0.1250 ± 0.0071", "+13.6%"]
    assert rows[1][1:] == ["SASRecAWR", "2", "0.1100 ± 0.0141", ""]
    assert rows[2][1:] == ["SASRecAWR + simple", "2", "0.0950 ± 0.0071", "-13.6%"]
    # a none run is never compared with itself, whatever its settings
    assert rows[3][1:] == ["SASRecAWR [enable_amp=True]", "1", "0.0500", ""]
    assert "GRU4Rec" not in text


def test_a_row_is_compared_with_none_on_its_own_seeds():
    """none has seeds 1-3, simple only 1-2: simple's change is against none's seeds 1-2,
    in the choice table (validation) and in the summary behind Table 2 (test)."""
    from recbole_awrsr.tables import summarize

    frame = choice_frame()
    extra = {**frame.iloc[0].to_dict(), "seed": "3", "valid_ndcg@10": 0.50, "test_ndcg@5": 0.50}
    frame = pd.concat([frame, pd.DataFrame([extra])], ignore_index=True)
    rows = {row[1].strip("*"): row for row in table_rows(choice_markdown(frame))}
    # V2 0.125 against none's seeds 1-2 (0.11), not against all three (0.24)
    assert rows[f"SASRecAWR + simple [{VARIANT}]"][2:] == ["2", "0.1250 ± 0.0071", "+13.6%"]
    assert rows["SASRecAWR"][2:4] == ["3", "0.2400 ± 0.2254"]  # 0.10, 0.12, 0.50
    summary = summarize(frame, ["ndcg@5"]).set_index(["mechanism", "variant"])
    assert summary.loc[("simple", VARIANT), "base_mean"] == pytest.approx(0.11)
    assert summary.loc[("simple", VARIANT), "change_pct"] == pytest.approx((0.125 - 0.11) / 0.11 * 100)


def test_choice_table_names_the_best_row():
    frame = choice_frame()
    text = choice_markdown(frame)
    assert text.endswith(f"Highest mean validation NDCG@10: SASRecAWR + simple [{VARIANT}] (0.1250, 2 runs).")
    assert choice_markdown(frame.drop(columns="valid_ndcg@10")) == ""


DOCUMENT = """# Results

Prose before.

<!-- report: g/choice -->
stale numbers
<!-- /report -->

Prose between.
<!-- report: g/legend -->
<!-- /report -->
The end.
"""


def test_fill_blocks_replaces_only_what_is_between_the_markers():
    sections = {"g": {"choice": "| new |", "legend": "Legend."}}
    text, filled = fill_blocks(DOCUMENT, sections)
    assert filled == 2
    assert "stale numbers" not in text
    assert text == DOCUMENT.replace("stale numbers", "| new |").replace(
        "<!-- report: g/legend -->\n", "<!-- report: g/legend -->\nLegend.\n")
    # filling again changes nothing
    assert fill_blocks(text, sections) == (text, 2)


@pytest.mark.parametrize("document, message", [
    (DOCUMENT.replace("g/choice", "h/choice"), "doc.md, line 5: no grid 'h'"),
    (DOCUMENT.replace("g/choice", "g/tables"), "doc.md, line 5: grid 'g' has no section 'tables'"),
    (DOCUMENT.replace("stale numbers\n<!-- /report -->", "stale"), "doc.md, line 5: the block g/choice has no"),
    ("x\n<!-- /report -->\n", "doc.md, line 2: '<!-- /report -->' without"),
    ("<!-- report: g choice -->\n<!-- /report -->", "doc.md, line 1: expected '<!-- report: GRID/SECTION -->'"),
])
def test_fill_blocks_names_the_line_of_a_broken_block(document, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        fill_blocks(document, {"g": {"choice": "", "legend": ""}}, "doc.md")


def test_report_rewrites_every_grid_and_the_document(tmp_path):
    results = tmp_path / "results"
    (results / "g").mkdir(parents=True)
    (results / "empty").mkdir()  # no results.csv: not a grid
    choice_frame().to_csv(results / "g" / "results.csv", index=False)
    document = tmp_path / "results.md"
    document.write_text(DOCUMENT)
    assert report(str(results), str(document)) == {"g": 8}
    for name in ("tables.md", "summary.csv"):
        assert (results / "g" / name).is_file()
    text = document.read_text()
    assert "stale numbers" not in text
    assert f"| 1 | **SASRecAWR + simple [{VARIANT}]** | 2 | 0.1250 ± 0.0071 | +13.6% |" in text
    # the block and the grid's tables.md say the same
    assert choice_markdown(pd.read_csv(results / "g" / "results.csv", dtype=str,
                                       keep_default_na=False)) in (results / "g" / "tables.md").read_text()


def test_report_command_refuses_a_broken_document_and_leaves_it_as_it_was(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "g").mkdir(parents=True)
    choice_frame().to_csv(results / "g" / "results.csv", index=False)
    document = tmp_path / "results.md"
    broken = DOCUMENT.replace("g/legend", "g/nothing")
    document.write_text(broken)
    status = cli.main(["report", "--results", str(results), "--document", str(document)])
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "line 10: grid 'g' has no section 'nothing'" in error
    assert document.read_text() == broken
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".results")]


def test_the_table_of_one_depth_is_the_one_tables_md_shows(tmp_path):
    results = tmp_path / "results"
    (results / "g").mkdir(parents=True)
    choice_frame().to_csv(results / "g" / "results.csv", index=False)
    document = tmp_path / "results.md"
    document.write_text("<!-- report: g/table2-L2 -->\n<!-- /report -->\n")
    report(str(results), str(document))
    block = document.read_text().split("\n")[1:-2]
    tables = (results / "g" / "tables.md").read_text()
    under_heading = tables.split("## Table 2 (n_layers = 2)\n\n", 1)[1].split("\n\n", 1)[0]
    assert block == under_heading.strip("\n").split("\n") and block[0].startswith("| model |")
    assert any(line.startswith("| SASRecAWR + simple") for line in block)


def trials_frame(statuses=("TERMINATED", "TERMINATED", "ERROR")):
    """A search's trials.csv as ``recbole-awrsr tune`` writes it: three trials, one failed."""
    return pd.DataFrame({
        "trial_id": ["a_00000", "a_00001", "a_00002"], "status": list(statuses),
        "hidden_size": [32.0, 64.0, 64.0], "learning_rate": [0.0012909637649110278, 0.003, 0.001],
        "epochs_reported": [52, 5, 0], "best_epoch": [50, 3, None],
        "valid_score": [0.0417, 0.0452, None], "valid_ndcg@10": [0.0522, 0.0561, None],
        "error": ["", "", "ValueError: bad"]})


def test_search_table_ranks_trials_by_validation_score_and_names_the_choice():
    from recbole_awrsr.tables import search_markdown

    text = search_markdown(trials_frame(), chosen="a_00001")
    rows = table_rows(text)
    assert rows[0] == ["1", "**a_00001**", "TERMINATED", "64", "0.003", "5", "3", "0.0452", "0.0561"]
    assert rows[1] == ["2", "a_00000", "TERMINATED", "32", "0.00129", "52", "50", "0.0417", "0.0522"]
    assert rows[2][:3] == ["3", "a_00002", "ERROR"] and rows[2][-2:] == ["", ""]
    assert text.splitlines()[-1] == "3 trials (1 failed); best.yaml is trial a_00001's configuration."
    interrupted = search_markdown(trials_frame(("TERMINATED", "RUNNING", "PENDING")))
    assert interrupted.splitlines()[-1] == ("3 trials, 2 not ended (the search was interrupted): "
                                            "nothing chosen yet.")


def test_report_fills_a_search_block_and_finds_the_chosen_trial_from_best_yaml(tmp_path):
    results = tmp_path / "results"
    search = results / "tune" / "beauty"
    search.mkdir(parents=True)
    trials_frame().to_csv(search / "trials.csv", index=False)
    (search / "best.yaml").write_text("# comment\nepochs: 80\nhidden_size: 32\n"
                                      "learning_rate: 0.0012909637649110278\n")
    document = tmp_path / "results.md"
    document.write_text("before\n<!-- report: tune/beauty/search -->\nstale\n<!-- /report -->\nafter\n")
    report(str(results), str(document))
    text = document.read_text()
    assert "stale" not in text and text.startswith("before\n") and text.endswith("\nafter\n")
    assert "| 2 | **a_00000** | TERMINATED | 32 |" in text
    assert "best.yaml is trial a_00000's configuration." in text
    assert (search / "search.md").read_text().startswith("# Search\n\n| rank | trial |")
    # a best.yaml that matches no trial is a broken search folder, named
    (search / "best.yaml").write_text("hidden_size: 128\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigurationError, match="best.yaml: no trial of trials.csv has its searched values"):
        report(str(results), str(document))
