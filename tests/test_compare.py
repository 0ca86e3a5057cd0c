"""The drop-in comparison: cells, resume, tables and the paired test."""

import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import TINY_USERS
from recbole_awrsr import compare
from recbole_awrsr.compare import KEYS, main, mechanisms_for, plan
from recbole_awrsr.tables import paired_p_value, per_user_p_value, tables_markdown


def tiny_argv(tiny_config_dict, *more):
    # the cells set seed (and n_layers with --layers) themselves
    varied = {"checkpoint_dir", "seed"} | ({"n_layers"} if "--layers" in more else set())
    keys = {key: value for key, value in tiny_config_dict.items() if key not in varied}
    return ["--datasets", "tiny", "--seeds", "1", "2", "--out", "results", *more] + [
        f"--{key}={value}" for key, value in keys.items()]


def entry_change(cell_text):
    """The '(+x.x%)' of a table entry as a float, None when it has none."""
    found = re.search(r"\(([+-]\d+\.\d)%\)", cell_text)
    return float(found.group(1)) if found else None


def markdown_rows(text, heading):
    """``{first column: [entries]}`` and the header of the table under ``heading``."""
    block = text.split(heading, 1)[1].strip().split("\n\n", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    split = [[part.strip() for part in line.strip("|").split("|")] for line in lines]
    return split[0], {row[0]: row[1:] for row in split[2:]}


def test_mechanisms_and_plan():
    assert mechanisms_for("SASRecAWR") == ["none", "simple", "value", "additive", "smooth"]
    assert mechanisms_for("STOSAAWR") == ["none", "simple", "value", "additive", "smooth", "stochastic"]
    assert mechanisms_for("GRU4Rec") == ["-"]
    # RecBole's transformers refined by the plugin take the dot-product mechanisms
    assert mechanisms_for("BERT4RecAWR") == ["none", "simple", "value", "additive", "smooth"]
    assert mechanisms_for("STOSAAWR", only=["value"]) == ["none", "value"]
    cells = plan(["a", "b"], ["SASRecAWR"], ["GRU4Rec"], [1, 2], [1, 2, 3])
    assert len(cells) == 2 * 2 * (1 + 5) * 3
    assert len(set(cells)) == len(cells)


def test_per_user_paired_test_matches_the_textbook_value():
    # differences 0.2, 0, -0.1, 0.3, 0.5: mean 0.18, sd sqrt(0.228 / 4), t = 1.6859 with 4 dof
    ours, base = [0.5, 0.2, 0.0, 0.3, 1.0], [0.3, 0.2, 0.1, 0.0, 0.5]
    assert per_user_p_value(ours, base) == pytest.approx(0.16710, abs=1e-4)


def test_paired_test_matches_hand_computed_value():
    # differences 1, 2, 2, 3: mean 2, sd sqrt(2/3), t = 2 / (sd / 2) = 4.899 with 3 dof
    assert paired_p_value([1, 2, 3, 4], [0, 0, 1, 1]) == pytest.approx(0.01628, abs=1e-4)
    assert paired_p_value([1.0], [0.5]) != paired_p_value([1.0], [0.5])  # NaN: one pair


def synthetic_results():
    rows = []
    for seed, (base, better, same) in enumerate([(0.10, 0.12, 0.11), (0.20, 0.22, 0.19),
                                                 (0.30, 0.32, 0.30)], start=1):
        for mechanism, value in (("none", base), ("simple", better), ("value", same)):
            rows.append({"dataset": "d", "model": "SASRecAWR", "mechanism": mechanism,
                         "layers": "1", "seed": str(seed), "test_recall@1": value,
                         "test_recall@5": value, "test_ndcg@5": value})
    return pd.DataFrame(rows)


def test_table_marks_significant_changes_only():
    text, summary = tables_markdown(synthetic_results())
    _, rows = markdown_rows(text, "## Table 2 (n_layers = 1)")
    # simple is +0.02 on every seed: +10.0% of the mean 0.2, and significant
    assert rows["SASRecAWR + simple"][2] == "0.2200 (+10.0%)*"
    # value: +0.01, -0.01, 0: no consistent change, no mark
    assert rows["SASRecAWR + value"][2] == "0.2000 (+0.0%)"
    assert rows["SASRecAWR"][2] == "0.2000"
    simple = summary[(summary["mechanism"] == "simple") & (summary["metric"] == "ndcg@5")].iloc[0]
    assert simple["p_value"] < 0.05 and simple["change_pct"] == pytest.approx(10.0)


def test_comparison_writes_tables_and_resumes(tiny_config_dict, tmp_path, monkeypatch):
    """SASRecAWR (4 mechanisms, 1 and 2 layers) and GRU4Rec, two seeds, on the tiny dataset."""
    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--baselines", "GRU4Rec",
                     "--layers", "1", "2")
    assert main(argv) == 0
    results = pd.read_csv(tmp_path / "results" / "results.csv", dtype={k: str for k in KEYS})
    assert len(results) == 2 * (1 + 5) * 2
    assert not results.duplicated(KEYS).any()
    assert set(results["mechanism"]) == {"-", "none", "simple", "value", "additive", "smooth"}
    assert results[["test_recall@1", "test_recall@5", "test_ndcg@5"]].notna().all().all()
    assert not list((tmp_path / "results" / "checkpoints").glob("*.pth"))
    # every run: epochs, best epoch, validation sharpness (plugin models only)
    assert (results["epochs"].astype(int) == 2).all()
    assert results["code"].str.fullmatch(r"[0-9a-f]{7,}(\+changes)?|recbole-awrsr .+").all()
    from recbole_awrsr.compare import machine_name
    assert (results["machine"] == machine_name("cpu")).all() and results["machine"].str.len().gt(0).all()
    assert results["best_epoch"].astype(int).between(0, 1).all()
    refined = results[results["model"] == "SASRecAWR"]
    assert refined["valid_refined_entropy"].astype(float).between(0, 1.000001).all()
    assert results[results["model"] == "GRU4Rec"]["valid_refined_entropy"].isna().all()
    # per-user test metrics: one file per run, one row per test user, averaging to the
    # run's own test NDCG@10
    per_user = sorted((tmp_path / "results" / "per_user").glob("*.csv"))
    assert len(per_user) == len(results)
    for record in results.to_dict("records"):
        cell = compare.Cell(record["dataset"], record["model"], record["mechanism"],
                            record["layers"], int(record["seed"]), record["variant"])
        users = pd.read_csv(compare.per_user_path(tmp_path / "results", cell, record["layers"]))
        assert len(users) == TINY_USERS and users["user"].is_unique
        assert users["ndcg@10"].mean() == pytest.approx(float(record["test_ndcg@10"]), abs=1e-4)
        # the run's training history is kept in the grid (the checkpoints folder is not):
        # one row per epoch, its best validation score the row's
        history = pd.read_csv(compare.kept_history_path(tmp_path / "results", cell, record["layers"]))
        assert list(history["epoch"]) == [0, 1]
        assert history["valid_score"].max() == pytest.approx(float(record["best_valid_score"]))
        sharpness = "refined_entropy" in history and history["refined_entropy"].notna().all()
        assert sharpness == (record["model"] == "SASRecAWR")
    assert (tmp_path / "results" / "curves.png").stat().st_size > 10_000

    text = (tmp_path / "results" / "tables.md").read_text()
    assert "## Table 3 (NDCG@5 by n_layers)" in text
    assert "## Validation (what settings are chosen on)" in text
    users_section = text.split("## Significance across test users (NDCG@10)", 1)[1]
    assert len([line for line in users_section.splitlines() if line.startswith("| tiny |")]) == 6
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    # the mechanisms with matrices; smooth's two tiny epochs leave A near uniform, where
    # (A + U) / 2 ranks as A does and the paired test has no differences to test
    paired = summary[(summary["metric"] == "ndcg@10") & summary["mechanism"].isin(["simple", "value", "additive"])
                     & (summary["model"] == "SASRecAWR")]
    assert len(paired) == 2 * 3 and paired["p_users"].between(0, 1).all()
    # the relative change in the table is what the CSV's numbers give
    ours = results[results["model"] == "SASRecAWR"]
    means = ours.groupby(["layers", "mechanism"])[["test_recall@1", "test_recall@5",
                                                   "test_ndcg@5"]].mean()
    checked = 0
    for layers in ("1", "2"):
        header, rows = markdown_rows(text, f"## Table 2 (n_layers = {layers})")
        assert header == ["model", "tiny R@1", "tiny R@5", "tiny N@5"]
        assert "GRU4Rec" in rows
        for mechanism in ("simple", "value", "additive"):
            for column, metric in enumerate(["test_recall@1", "test_recall@5", "test_ndcg@5"]):
                entry = rows[f"SASRecAWR + {mechanism}"][column]
                mean, base = means.loc[(layers, mechanism), metric], means.loc[(layers, "none"), metric]
                assert entry.startswith(f"{mean:.4f} (")
                assert entry_change(entry) == pytest.approx(round((mean - base) / base * 100, 1))
                checked += 1
    assert checked == 18
    header, rows = markdown_rows(text, "## Table 3 (NDCG@5 by n_layers)")
    assert header == ["model", "tiny L=1", "tiny L=2"]
    assert rows["SASRecAWR + value"][1].startswith(f"{means.loc[('2', 'value'), 'test_ndcg@5']:.4f}")

    # a rerun trains nothing: every cell is finished
    calls = []
    monkeypatch.setattr(compare, "run_cell", lambda *args: calls.append(args) or {})
    before = (tmp_path / "results" / "results.csv").read_text()
    assert main(argv) == 0
    assert calls == []
    assert (tmp_path / "results" / "results.csv").read_text() == before


def test_interrupted_comparison_runs_only_missing_cells(tiny_config_dict, tmp_path, monkeypatch):
    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "simple")
    assert main(argv) == 0
    path = tmp_path / "results" / "results.csv"
    results = pd.read_csv(path, dtype={k: str for k in KEYS})
    assert len(results) == 4
    assert set(results["layers"]) == {str(tiny_config_dict["n_layers"])}  # from the config
    # as if the run had stopped before its last cell
    results.iloc[:-1].to_csv(path, index=False)
    real_run_cell, calls = compare.run_cell, []

    def counting(cell, *args):
        calls.append(cell)
        return real_run_cell(cell, *args)

    monkeypatch.setattr(compare, "run_cell", counting)
    assert main(argv) == 0
    assert [(c.dataset, c.model, c.mechanism, c.layers, c.seed) for c in calls] == [
        ("tiny", "SASRecAWR", "simple", None, 2)]
    assert "refine_" not in calls[0].variant and "epochs=2" in calls[0].variant
    again = pd.read_csv(path, dtype={k: str for k in KEYS})
    assert len(again) == 4 and not again.duplicated(KEYS).any()


def test_failed_cell_is_reported_and_retried(tiny_config_dict, tmp_path, monkeypatch, capsys):
    real_run_cell = compare.run_cell

    def flaky(cell, *args):
        if cell.mechanism == "simple" and cell.seed == 1:
            raise RuntimeError("out of memory")
        return real_run_cell(cell, *args)

    monkeypatch.setattr(compare, "run_cell", flaky)
    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "simple")
    assert main(argv) == 1
    assert "1 runs failed" in capsys.readouterr().err
    assert "out of memory" in (tmp_path / "results" / "failures.txt").read_text()
    assert len(pd.read_csv(tmp_path / "results" / "results.csv")) == 3
    monkeypatch.setattr(compare, "run_cell", real_run_cell)
    assert main(argv) == 0
    assert len(pd.read_csv(tmp_path / "results" / "results.csv")) == 4
    assert not (tmp_path / "results" / "failures.txt").exists()


def test_keys_the_cells_vary_are_refused(tiny_config_dict, capsys):
    with pytest.raises(SystemExit):
        main(tiny_argv(tiny_config_dict, "--seed=3"))
    assert "--seed is set per run by --seeds" in capsys.readouterr().err


def test_unknown_baseline_fails_before_training(tiny_config_dict, capsys):
    from recbole_awrsr.cli import main as cli_main

    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--baselines", "NoSuchRec")
    assert cli_main(["compare", *argv]) == 2
    assert "NoSuchRec" in capsys.readouterr().err


def test_merged_results_keep_the_papers_order():
    """Rows from several runs, in any order: baselines, then each backbone with none first;
    Table 3's depths in numeric order (10 after 2)."""
    rows = []
    for layers in ("10", "2"):
        for model, mechanism in (("STOSAAWR", "stochastic"), ("SASRecAWR", "simple"),
                                 ("STOSAAWR", "none"), ("GRU4Rec", "-"), ("SASRecAWR", "none")):
            for seed in ("1", "2"):
                value = 0.1 + 0.01 * int(seed)
                rows.append({"dataset": "d", "model": model, "mechanism": mechanism, "variant": "",
                             "layers": "-" if model == "GRU4Rec" else layers, "seed": seed,
                             "test_recall@1": value, "test_recall@5": value, "test_ndcg@5": value})
    text, _ = tables_markdown(pd.DataFrame(rows).drop_duplicates(KEYS))
    assert text.index("## Table 2 (n_layers = 2)") < text.index("## Table 2 (n_layers = 10)")
    _, table2 = markdown_rows(text, "## Table 2 (n_layers = 2)")
    assert list(table2) == ["GRU4Rec", "SASRecAWR", "SASRecAWR + simple", "STOSAAWR",
                            "STOSAAWR + stochastic"]
    header, table3 = markdown_rows(text, "## Table 3 (NDCG@5 by n_layers)")
    assert header == ["model", "d L=2", "d L=10"]
    assert "GRU4Rec" not in table3


def test_sharpness_figure_has_a_point_per_run_and_none_without_sharpness():
    from recbole_awrsr.tables import sharpness_figure

    frame = synthetic_results()
    assert sharpness_figure(frame) is None  # no sharpness columns: nothing to draw
    frame["valid_refined_entropy"] = [0.9, 0.5, 0.7] * 3
    frame["valid_first_entropy"] = 0.8
    frame["valid_ndcg@10"] = [0.05, 0.06, 0.055] * 3
    figure = sharpness_figure(frame)
    (axis,) = figure.axes
    points = sum(len(collection.get_offsets()) for collection in axis.collections)
    assert points == len(frame)
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "SASRecAWR", "SASRecAWR + simple", "SASRecAWR + value"]
    assert axis.lines[0].get_xdata()[0] == pytest.approx(0.8)  # none's first-order entropy


def test_validation_table_blanks_entropies_that_are_not_measurements():
    from recbole_awrsr.tables import validation_markdown

    frame = synthetic_results()
    frame["valid_ndcg@10"] = 0.05
    # value's rows from before signed weights were measured by |w|: entropy < 0, signed mass
    frame["valid_refined_entropy"] = [0.8, 0.6, -1.2] * 3
    frame["valid_refined_recent"] = [0.4, 0.5, 0.7] * 3
    frame["valid_first_entropy"] = 0.8
    header, rows = markdown_rows(validation_markdown(frame), "### d, n_layers = 1")
    cells = {label: dict(zip(header[1:], entries)) for label, entries in rows.items()}
    assert cells["SASRecAWR + simple"]["entropy Ã"].startswith("0.600")
    assert cells["SASRecAWR + simple"]["recent-5 Ã"].startswith("0.500")
    assert cells["SASRecAWR + value"]["entropy Ã"] == ""
    assert cells["SASRecAWR + value"]["recent-5 Ã"] == ""
    assert cells["SASRecAWR + value"]["entropy A"].startswith("0.800")


def test_other_shared_keys_or_config_files_run_anew(tiny_config_dict, tmp_path, monkeypatch):
    """Finished cells are reused only under the same keys and config-file contents: a rerun
    with --epochs=3 in the same folder does not take the 2-epoch rows as its own."""
    calls = []

    def fake_run_cell(cell, *args):
        calls.append(cell)
        return {"best_valid_score": 0.1, "test_ndcg@5": 0.1}

    monkeypatch.setattr(compare, "run_cell", fake_run_cell)
    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "simple")
    assert main(argv) == 0 and len(calls) == 4
    assert main(argv) == 0 and len(calls) == 4  # same keys: nothing to run
    assert main([a if not a.startswith("--epochs=") else "--epochs=3" for a in argv]) == 0
    assert len(calls) == 8  # other keys: every cell again, beside the old rows
    config = tmp_path / "extra.yaml"
    config.write_text("learning_rate: 0.002\n")
    assert main(argv + ["--config", str(config)]) == 0 and len(calls) == 12
    config.write_text("learning_rate: 0.003\n")  # the same file, other contents
    assert main(argv + ["--config", str(config)]) == 0 and len(calls) == 16
    results = pd.read_csv(tmp_path / "results" / "results.csv", dtype={k: str for k in KEYS},
                          keep_default_na=False)
    assert len(results) == 16 and results["variant"].nunique() == 4  # none and simple share each
    # a refinement key is not part of none's variant: none runs once for two variants
    calls.clear()
    assert main(argv + ["--refine_input=centered"]) == 0
    assert {cell.mechanism for cell in calls} == {"simple"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_rows_name_the_code_they_ran(tmp_path):
    from recbole_awrsr import __version__
    from recbole_awrsr.compare import code_version

    package = tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    assert code_version(package) == f"recbole-awrsr {__version__}"  # not a checkout

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c",
                        "user.email=t@t", *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    head = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert code_version(package) == head
    (package / "__init__.py").write_text("x = 2\n")
    assert code_version(package) == head + "+changes"
    (tmp_path / "repo" / "elsewhere.txt").write_text("outside the package\n")
    (package / "__init__.py").write_text("x = 1\n")
    assert code_version(package) == head


def test_skip_none_runs_only_the_named_mechanisms(tiny_config_dict, tmp_path, monkeypatch):
    """Split over processes, a grid's none cells run in one process (``--mechanisms none``)
    and the others leave them out (``--skip-none``), so no cell is trained twice."""
    ran = []

    def record(cell, *args):
        ran.append((cell.mechanism, cell.seed))
        raise RuntimeError("not trained in this test")

    monkeypatch.setattr(compare, "run_cell", record)
    assert main(tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "value",
                          "--skip-none")) == 1
    assert ran == [("value", 1), ("value", 2)]
    ran.clear()
    assert main(tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "none",
                          "--skip-none")) == 1
    assert ran == [("none", 1), ("none", 2)]
    ran.clear()
    assert main(tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "value")) == 1
    assert ran == [("none", 1), ("none", 2), ("value", 1), ("value", 2)]


def test_rows_name_the_machine_they_ran_on(tmp_path):
    from recbole_awrsr.compare import machine_name

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert machine_name("cpu", cpuinfo=cpuinfo) == "AMD EPYC 9R14"
    # no cpuinfo (not Linux): what the platform says, never empty
    assert machine_name("cpu", cpuinfo=tmp_path / "missing")


def first_pass_cells(tiny_config_dict, monkeypatch):
    """The (cell, out, layers) that ``run_cell`` is called with, in order, for the
    SASRecAWR simple grid of :func:`tiny_argv` (nothing trained, no row written)."""
    seen = []

    def refuse(cell, config_files, keys, out, layers):
        seen.append((cell, out, layers))
        raise RuntimeError("not trained in this test")

    monkeypatch.setattr(compare, "run_cell", refuse)
    argv = tiny_argv(tiny_config_dict, "--models", "SASRecAWR", "--mechanisms", "simple")
    assert main(argv) == 1 and len(seen) == 4
    return argv, seen


def test_a_claim_holds_across_processes_and_dies_with_its_holder(tmp_path):
    import sys

    cell = compare.Cell("tiny", "SASRecAWR", "simple", None, 1)
    path = compare.claim_path(str(tmp_path), cell, 2)
    (tmp_path / "checkpoints").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"handle = open({str(path)!r}, 'a')\nfcntl.flock(handle, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with compare.claimed(str(tmp_path), cell, 2) as ours:
            assert ours is False
        with compare.claimed(str(tmp_path), cell, 3) as ours:
            assert ours is True  # the same cell at 3 layers is another cell: another file
    finally:
        holder.kill()
        holder.wait()
    with compare.claimed(str(tmp_path), cell, 2) as ours:  # killed: the kernel let it go
        assert ours is True
        with compare.claimed(str(tmp_path), cell, 2) as again:
            assert again is False  # flock: a second open of the file is another claimant


def test_processes_share_a_grid_cell_by_cell(tiny_config_dict, tmp_path, monkeypatch, capsys):
    """Two processes given the same cells: the one that finds a cell claimed passes it by
    (no training, no row, exit 0) and takes the next; once the claim is free the cell runs."""
    argv, seen = first_pass_cells(tiny_config_dict, monkeypatch)
    held, out, layers = seen[0]
    ran = []

    def fake(cell, *args):
        ran.append(cell)
        return {"best_valid_score": 0.1, "test_ndcg@5": 0.1}

    monkeypatch.setattr(compare, "run_cell", fake)
    capsys.readouterr()
    with compare.claimed(out, held, layers) as ours:
        assert ours
        assert main(argv) == 0
    assert ran == [cell for cell, _, _ in seen[1:]]
    said = capsys.readouterr()
    assert "another process is training it" in said.out + said.err
    results = pd.read_csv(tmp_path / "results" / "results.csv", dtype={k: str for k in KEYS})
    assert len(results) == 3
    assert not ((results["mechanism"] == held.mechanism) & (results["seed"] == str(held.seed))).any()
    assert main(argv) == 0 and ran[-1] == held  # the claim is free: it runs now
    assert len(pd.read_csv(tmp_path / "results" / "results.csv")) == 4


def test_a_cell_finished_elsewhere_meanwhile_is_not_trained_again(tiny_config_dict, tmp_path,
                                                                   monkeypatch, capsys):
    """The results are read again once a cell is claimed: a cell another process finished
    after this one read them is not trained twice."""
    import os
    from dataclasses import asdict

    argv, seen = first_pass_cells(tiny_config_dict, monkeypatch)
    (first, out, _), (second, _, second_layers) = seen[0], seen[1]
    ran = []

    def meanwhile(cell, config_files, keys, out, layers):
        ran.append(cell)
        if cell == first:  # while it trains, another process ends the second cell
            compare.append_result(os.path.join(out, "results.csv"),
                                  {**asdict(second), "layers": second_layers, "best_valid_score": 0.2})
        return {"best_valid_score": 0.1, "test_ndcg@5": 0.1}

    monkeypatch.setattr(compare, "run_cell", meanwhile)
    capsys.readouterr()
    assert main(argv) == 0
    assert ran == [seen[0][0], seen[2][0], seen[3][0]]
    said = capsys.readouterr()
    assert "another process finished it meanwhile" in said.out + said.err
    results = pd.read_csv(tmp_path / "results" / "results.csv", dtype={k: str for k in KEYS})
    assert len(results) == 4 and not results.duplicated(KEYS).any()
