"""Hyperparameter search: params-file parsing, search spaces, and one real Ray Tune run."""

import json
import math
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.errors import ParamsFileError
from recbole_awrsr.search_space import Param, parse_params, read_params_file, search_space

PARAMS = """\
# every kind RecBole's format has
learning_rate loguniform -9.2 -4.6
hidden_size choice [32, 64]
hidden_dropout_prob uniform 0.1 0.5   # trailing comment
weight_decay quniform 0 0.001 0.0001

max_len choice ['a', "b"]
"""


def test_each_distribution_kind_is_parsed():
    params = parse_params(PARAMS)
    assert params == {
        "learning_rate": Param("learning_rate", "loguniform", (-9.2, -4.6)),
        "hidden_size": Param("hidden_size", "choice", (32, 64)),
        "hidden_dropout_prob": Param("hidden_dropout_prob", "uniform", (0.1, 0.5)),
        "weight_decay": Param("weight_decay", "quniform", (0.0, 0.001, 0.0001)),
        "max_len": Param("max_len", "choice", ("a", "b")),
    }


def test_search_space_matches_recboles_meaning():
    from ray.tune.search.sample import Categorical, Float

    space = search_space(parse_params(PARAMS))
    assert isinstance(space["hidden_size"], Categorical)
    assert space["hidden_size"].categories == [32, 64]
    # loguniform bounds are natural logs in RecBole/hyperopt; Ray takes the values
    lr = space["learning_rate"]
    assert isinstance(lr, Float)
    assert lr.lower == pytest.approx(math.exp(-9.2)) and lr.upper == pytest.approx(math.exp(-4.6))
    samples = [lr.sample() for _ in range(200)]
    assert all(math.exp(-9.2) <= value <= math.exp(-4.6) for value in samples)
    assert (space["hidden_dropout_prob"].lower, space["hidden_dropout_prob"].upper) == (0.1, 0.5)
    decay = space["weight_decay"]
    values = [decay.sample() for _ in range(200)]
    assert all(abs(v / 0.0001 - round(v / 0.0001)) < 1e-6 and 0 <= v <= 0.001 for v in values)
    grid = search_space(parse_params("hidden_size choice [32, 64]"), grid=True)
    assert grid["hidden_size"] == {"grid_search": [32, 64]}


@pytest.mark.parametrize(
    "line, why",
    [
        ("learning_rate loguniform -5", "loguniform needs 2 numbers"),
        ("hidden_size choice 64", "choice needs a non-empty list"),
        ("hidden_size choice [64", "choice needs a Python list"),
        ("hidden_size gaussian 0 1", "unknown kind 'gaussian'"),
        ("dropout uniform 0.5 0.1", "low < high"),
        ("dropout uniform a b", "needs numbers"),
        ("weight_decay quniform 0 1 0", "q > 0"),
        ("lonely", "expected 'name kind values'"),
    ],
)
def test_bad_line_names_file_line_and_text(tmp_path, line, why):
    path = tmp_path / "model.hyper"
    path.write_text(f"# header\nn_layers choice [1, 2]\n{line}\n")
    with pytest.raises(ParamsFileError) as error:
        read_params_file(str(path))
    message = str(error.value)
    assert f"{path}:3:" in message
    assert why in message
    assert line.strip() in message
    assert isinstance(error.value, ConfigurationError)  # the CLI reports it in one line


def test_duplicate_and_empty_files_are_refused():
    with pytest.raises(ParamsFileError, match="<params>:2: 'a' is already searched"):
        parse_params("a choice [1]\na choice [2]")
    with pytest.raises(ParamsFileError, match="no parameter to search"):
        parse_params("# nothing\n\n")


def test_shipped_search_spaces_parse():
    root = Path(__file__).resolve().parent.parent / "properties" / "hyper"
    files = sorted(root.glob("*.hyper"))
    assert len(files) >= 2
    for path in files:
        params = read_params_file(str(path))
        assert {"learning_rate", "hidden_size", "n_layers", "n_heads"} <= set(params)


def test_tuning_run_writes_trials_and_best_yaml_that_reruns(tiny_config_dict, tmp_path, monkeypatch,
                                                            ray_home, capsys):
    """Three grid trials on the tiny dataset: two train, one raises (3 heads do not divide 16).

    The search goes on past the failure, every epoch is reported, and the best
    configuration reruns through the CLI to the validation score its trial reached. The
    atomic files sit where the default ``data_path`` (``dataset_atomic/``, relative) finds
    them from the command's folder, while Ray runs each trial in a folder of its own.
    """
    import shutil

    import ray

    from recbole_awrsr.cli import main as cli_main
    from recbole_awrsr.cli import run_main

    monkeypatch.setenv("HOME", str(ray_home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    (tmp_path / "heads.hyper").write_text("n_heads choice [1, 2, 3]\n")
    shutil.copytree(Path(tiny_config_dict["data_path"]) / "tiny", tmp_path / "dataset_atomic" / "tiny")
    fixed = {key: value for key, value in tiny_config_dict.items()
             if key not in ("checkpoint_dir", "n_heads", "data_path")}  # n_heads is searched
    fixed["epochs"] = 3
    argv = ["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=heads.hyper",
            "--search", "grid", "--num-samples", "1", "--num-cpus", "2", "--scheduler", "asha",
            "--out", "tuned"]
    argv += [f"--{key}={value}" for key, value in fixed.items()]
    try:
        assert cli_main(argv) == 0
        first = pd.read_csv(tmp_path / "tuned" / "trials.csv")
        capsys.readouterr()
        # the same command again continues the (finished) search: nothing trains again
        assert cli_main(argv) == 0
        assert "continuing the search in" in capsys.readouterr().err
    finally:
        ray.shutdown()
    assert not ray.is_initialized()

    trials = pd.read_csv(tmp_path / "tuned" / "trials.csv")
    pd.testing.assert_frame_equal(trials.sort_values("trial_id").reset_index(drop=True),
                                  first.sort_values("trial_id").reset_index(drop=True))
    assert len(trials) == 3
    by_heads = trials.set_index("n_heads")
    assert by_heads.loc[3, "status"] == "ERROR"
    assert "must be a multiple of n_heads" in by_heads.loc[3, "error"]
    for heads in (1, 2):
        assert by_heads.loc[heads, "status"] == "TERMINATED"
        assert by_heads.loc[heads, "epochs_reported"] == 3  # one report per epoch
        assert 0 < by_heads.loc[heads, "valid_score"] <= 1
        assert by_heads.loc[heads, "valid_score"] == by_heads.loc[heads, "valid_ndcg@5"]

    best_yaml = tmp_path / "tuned" / "best.yaml"
    best = yaml.safe_load(best_yaml.read_text())
    best_heads = int(trials.loc[trials["valid_score"].idxmax(), "n_heads"])
    assert best["n_heads"] == best_heads
    assert best["seed"] == 7 and best["epochs"] == 3 and best["hidden_size"] == 16
    assert "checkpoint_dir" not in best and "data_path" not in best  # portable
    assert ("#   recbole-awrsr --model=SASRecAWR --dataset=tiny --config_files=tuned/best.yaml\n"
            in best_yaml.read_text())  # the rerun command names the folder as it was given

    summary = json.loads((tmp_path / "tuned" / "best_result.json").read_text())
    assert summary["failed"] == 1
    best_score = trials["valid_score"].max()
    assert summary["best_valid_score"] == pytest.approx(best_score)
    assert summary["best_result"]["best_valid_score"] == pytest.approx(best_score, abs=1e-4)

    rerun = run_main(["--model=SASRecAWR", "--dataset=tiny", f"--config_files={best_yaml}",
                      "--no-save"])
    assert rerun["best_valid_score"] == pytest.approx(best_score, abs=1e-4)


def test_configuration_mistake_fails_before_ray_starts(tiny_config_dict, tmp_path, capsys):
    import ray

    from recbole_awrsr.cli import main

    (tmp_path / "p.hyper").write_text("n_heads choice [1]\n")
    status = main(["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=p.hyper",
                   f"--data_path={tiny_config_dict['data_path']}", "--refine_mechanism=stochastic"])
    assert status == 2
    assert "stochastic" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_each_kind_has_its_lowest_value_in_the_space():
    params = parse_params(PARAMS)
    assert params["learning_rate"].lowest() == pytest.approx(math.exp(-9.2))  # not the log bound
    assert params["hidden_size"].lowest() == 32
    assert params["hidden_dropout_prob"].lowest() == 0.1
    assert params["weight_decay"].lowest() == 0


def test_shipped_search_space_passes_the_check_before_ray(tiny_config_dict, tmp_path, capsys):
    """The configuration checked before Ray starts takes each searched key at a value of
    its space: a log-scale learning rate is not its (negative) log bound. A fixed mistake
    is then what is reported."""
    import ray

    from recbole_awrsr.cli import main

    shipped = Path(__file__).resolve().parent.parent / "properties" / "hyper" / "sasrec.hyper"
    status = main(["tune", "--model=SASRecAWR", "--dataset=tiny", f"--params_file={shipped}",
                   f"--data_path={tiny_config_dict['data_path']}", "--refine_mechanism=stochastic"])
    assert status == 2
    error = capsys.readouterr().err
    assert "stochastic" in error and "learning_rate" not in error
    assert not ray.is_initialized()


def test_key_both_searched_and_fixed_is_refused(tiny_config_dict, tmp_path, capsys):
    from recbole_awrsr.cli import main

    (tmp_path / "p.hyper").write_text("n_layers choice [1, 2]\n")
    status = main(["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=p.hyper", "--n_layers=1",
                   f"--data_path={tiny_config_dict['data_path']}"])
    assert status == 2
    assert "n_layers: searched in p.hyper and fixed with --n_layers" in capsys.readouterr().err


def test_a_dead_address_fails_at_once_naming_it(tiny_config_dict, tmp_path, capsys):
    import socket
    import time

    import ray

    from recbole_awrsr.cli import main

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "p.hyper").write_text("n_heads choice [1]\n")
    began = time.monotonic()
    status = main(["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=p.hyper",
                   f"--data_path={tiny_config_dict['data_path']}", f"--address=127.0.0.1:{port}"])
    assert status == 2 and time.monotonic() - began < 30
    err = capsys.readouterr().err
    assert f"--address 127.0.0.1:{port}: nothing accepts connections there" in err
    assert err.count("\n") == 1 and not ray.is_initialized()


def test_every_trial_failing_is_one_line(tiny_config_dict, tmp_path, monkeypatch, capsys, ray_home):
    import ray

    from recbole_awrsr.cli import main

    monkeypatch.setenv("HOME", str(ray_home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # an activation no layer knows: the config is fine, every model build fails
    (tmp_path / "p.hyper").write_text("hidden_act choice ['nope']\n")
    fixed = {key: value for key, value in tiny_config_dict.items() if key != "checkpoint_dir"}
    argv = ["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=p.hyper",
            "--num-samples", "1", "--num-cpus", "1", "--out", "tuned"]
    argv += [f"--{key}={value}" for key, value in fixed.items()]
    try:
        assert main(argv) == 2
    finally:
        ray.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: every trial failed (first: ")
    assert "nope" in err[-1] and "trials.csv" in err[-1]


def test_an_interrupted_search_chooses_nothing_and_the_same_command_finishes_it(
        tmp_path, capsys, heads_search):
    """Ray returns from an interrupted ``fit()`` as from a finished one. Interrupted (as
    Ctrl+C does, by the signal Ray also takes: SIGUSR1) once the first trial has reported,
    the search writes each trial's Ray status, no ``best.yaml``, and exits 2; the same
    command then finishes every trial, the interrupted one from where it stopped."""
    import glob
    import os
    import signal
    import threading
    import time

    import ray

    from recbole_awrsr.cli import main as cli_main

    argv = heads_search("tuned", epochs=15)

    def interrupt_after_first_report():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for progress in glob.glob(str(tmp_path / "tuned" / "ray" / "search" / "*" / "progress.csv")):
                if len(Path(progress).read_text().splitlines()) >= 2:  # header + one epoch
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return
            time.sleep(0.05)

    interrupter = threading.Thread(target=interrupt_after_first_report, daemon=True)
    try:
        interrupter.start()
        assert cli_main(argv) == 2
        interrupter.join()
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: the search was interrupted with ")
        assert "the same command continues it" in err
        cut = pd.read_csv(tmp_path / "tuned" / "trials.csv")
        assert len(cut) == 2 and (cut["status"] != "TERMINATED").any()
        assert sorted(cut["n_heads"]) == [1, 2]  # a trial that never started has its values too
        assert set(cut["status"]) <= {"TERMINATED", "RUNNING", "PENDING", "PAUSED"}
        assert not (tmp_path / "tuned" / "best.yaml").exists()

        assert cli_main(argv) == 0
    finally:
        ray.shutdown()
    trials = pd.read_csv(tmp_path / "tuned" / "trials.csv")
    assert list(trials["status"]) == ["TERMINATED", "TERMINATED"]
    # continued, not restarted or cut short (an epoch after the checkpoint Ray restored
    # from may be trained twice; it counts once)
    assert list(trials["epochs_reported"]) == [15, 15]
    best = yaml.safe_load((tmp_path / "tuned" / "best.yaml").read_text())
    assert best["n_heads"] == int(trials.loc[trials["valid_score"].idxmax(), "n_heads"])


def test_an_epoch_trained_again_after_a_restore_counts_once_with_its_later_report():
    """Ray restores a trial from the last checkpoint in the experiment state it saved,
    which may be older than the trial's last report; the epochs after it are trained and
    reported again. Each epoch is one epoch in the row, with the values of its later report."""
    from types import SimpleNamespace

    from recbole_awrsr.tune import trial_rows

    # epochs 1-3 reported, interrupted, restored from epoch 1's checkpoint: 2 and 3 again
    frame = pd.DataFrame({"epoch": [1, 2, 3, 2, 3, 4],
                          "valid_score": [0.10, 0.20, 0.30, 0.21, 0.25, 0.24],
                          "valid_recall@10": [0.5, 0.6, 0.7, 0.61, 0.65, 0.64]})
    result = SimpleNamespace(metrics={"trial_id": "t0"}, config={"n_heads": 2},
                             metrics_dataframe=frame, error=None, path="")
    (row,) = trial_rows([result], ["n_heads"], "max", {"t0": ("TERMINATED", None)})
    assert row["epochs_reported"] == 4
    assert row["best_epoch"] == 3 and row["valid_score"] == 0.25
    assert row["valid_recall@10"] == 0.65
    (low,) = trial_rows([result], ["n_heads"], "min", {"t0": ("TERMINATED", None)})
    assert low["best_epoch"] == 1 and low["valid_score"] == 0.10


class Killed(Exception):
    """Stands for the trial's process being killed."""


class FakeTune:
    """The part of ``ray.tune`` a trial uses: its id, the checkpoint it is restored from,
    and reports (each checkpoint copied away, as Ray persists it)."""

    def __init__(self, store, restore_from=None, die_after=None):
        self.store, self.restore_from, self.die_after = store, restore_from, die_after
        self.reports = []

    def get_context(self):
        return type("Context", (), {"get_trial_id": staticmethod(lambda: "trial0")})()

    def get_checkpoint(self):
        if self.restore_from is None:
            return None
        return type("Saved", (), {"as_directory": lambda _: nullcontext(str(self.restore_from))})()

    def report(self, metrics, checkpoint=None):
        import shutil

        self.reports.append(dict(metrics))
        shutil.copytree(checkpoint, self.store / f"checkpoint_epoch{metrics['epoch']}")
        if self.die_after == len(self.reports):
            raise Killed


def test_interrupted_trial_continues_from_its_last_report(tiny_config_dict, tmp_path, monkeypatch):
    """A trial killed after its third epoch's report, restored from that report's
    checkpoint, reports the remaining epochs with the values of an uninterrupted trial."""
    from ray import tune

    from recbole_awrsr.tune import Study, train_trial

    config = {key: value for key, value in tiny_config_dict.items() if key != "checkpoint_dir"}
    config.update(epochs=5, stopping_step=10, hidden_dropout_prob=0.3)

    def trial(name, **fake_options):
        fake = FakeTune(tmp_path / name, **fake_options)
        (tmp_path / name).mkdir(exist_ok=True)
        for attribute in ("get_context", "get_checkpoint", "report"):
            monkeypatch.setattr(tune, attribute, getattr(fake, attribute))
        monkeypatch.setattr(tune.Checkpoint, "from_directory", staticmethod(lambda path: path))
        study = Study("SASRecAWR", "tiny", (), config, str(tmp_path / name / "trials"), 1)
        try:
            train_trial({"n_heads": 2}, study)
        except Killed:
            pass
        return fake.reports

    whole = trial("whole")
    first = trial("cut", die_after=3)
    rest = trial("cut", restore_from=tmp_path / "cut" / "checkpoint_epoch2")
    assert [r["epoch"] for r in whole] == [0, 1, 2, 3, 4]
    assert [r["epoch"] for r in first] == [0, 1, 2] and [r["epoch"] for r in rest] == [3, 4]
    assert first + rest == whole


def test_trials_run_at_the_niceness_of_the_command(tmp_path, ray_home):
    """Ray nices its workers to 15 by default; a search's trials must not be starved by
    the machine's other (niceness 0) processes, nor niced twice when the command is.

    The search runs in a child at 3 more than this process's niceness, so that a worker
    niced by the command's niceness again (Ray adds RAY_worker_niceness to what a worker
    inherits) is told apart from one at the command's niceness."""
    import os
    import subprocess
    import sys

    script = (
        "import os, shutil, ray\n"
        "from recbole_awrsr.tune import start_local_ray\n"
        "temp_dir = start_local_ray(1)\n"
        "niceness = ray.remote(lambda: os.nice(0))\n"
        "print('worker niceness', ray.get(niceness.remote()))\n"
        "ray.shutdown()\n"
        "shutil.rmtree(temp_dir, ignore_errors=True)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "RAY_worker_niceness"}
    env.update(HOME=str(ray_home), RAY_USAGE_STATS_ENABLED="0")
    command = min(os.nice(0) + 3, 19)
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, preexec_fn=lambda: os.nice(3))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"worker niceness {command}" in result.stdout, result.stdout


def test_another_search_in_the_same_folder_is_refused(tmp_path):
    from recbole_awrsr.tune import check_same_search

    recorded = {"model": "SASRecAWR", "dataset": "beauty", "params_file": "n_heads choice [1, 2]\n",
                "fixed": {"epochs": "80"}, "num_samples": 16}
    check_same_search(str(tmp_path), recorded)  # the first run records it
    assert json.loads((tmp_path / "search.json").read_text()) == recorded
    check_same_search(str(tmp_path), dict(recorded))  # the same search continues
    other = {**recorded, "params_file": "n_heads choice [1, 2, 4]\n", "num_samples": 8}
    with pytest.raises(ConfigurationError, match=r"holds another search \(it differs in: "
                                                 r"num_samples, params_file\).*use another --out"):
        check_same_search(str(tmp_path), other)
