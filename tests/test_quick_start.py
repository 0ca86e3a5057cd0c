"""The door: CLI and run_recbole_awrsr end to end, checkpoints, the time budget, baselines."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from recbole_awrsr import get_trainer, load_data_and_model, run_recbole_awrsr
from recbole_awrsr.cli import main, parse_run_args
from recbole_awrsr.quick_start import run

RESULT_KEYS = {"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}


def cli_args(config):
    return [f"--{key}={value}" for key, value in config.items()]


def check_metrics(test_result):
    for k in (1, 5, 10):
        assert 0.0 <= test_result[f"recall@{k}"] <= 1.0
    for k in (5, 10):
        assert 0.0 <= test_result[f"ndcg@{k}"] <= test_result[f"recall@{k}"] + 1e-9
    # recall@k cannot fall as k grows
    assert test_result["recall@1"] <= test_result["recall@5"] <= test_result["recall@10"]


def test_cli_run_prints_table_and_checkpoint_reloads(tiny_config_dict, capsys):
    main(["--model=SASRecAWR", "--dataset=tiny", "--refine_mechanism=additive",
          *cli_args(tiny_config_dict)])
    out = capsys.readouterr().out
    assert "Test results: SASRecAWR on tiny" in out
    table = dict(re.findall(r"^(recall@\d+|ndcg@\d+)\s+([0-9.]+)$", out, flags=re.M))
    test_result = {name: float(value) for name, value in table.items()}
    assert set(test_result) >= {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    check_metrics(test_result)
    model_file = re.search(r"^checkpoint: (\S+\.pth)$", out, flags=re.M).group(1)

    config, model, _, _, _, test_data = load_data_and_model(model_file)
    assert config["refine_mechanism"] == "additive"
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    reloaded = trainer.evaluate(test_data, load_best_model=False)
    for name, value in test_result.items():
        assert round(reloaded[name], 4) == pytest.approx(value, abs=1e-9), name


def test_run_recbole_awrsr_returns_recbole_dict(tiny_config_dict):
    result = run_recbole_awrsr("SASRecAWR", "tiny", config_dict=tiny_config_dict)
    assert set(result) == RESULT_KEYS
    assert result["valid_score_bigger"] is True
    assert result["best_valid_score"] == result["best_valid_result"]["ndcg@5"]
    check_metrics(result["test_result"])


def test_baseline_runs_through_the_same_door(tiny_config_dict):
    result = run_recbole_awrsr("GRU4Rec", "tiny", config_dict={**tiny_config_dict, "embedding_size": 16,
                                                               "hidden_size": 16})
    assert set(result["test_result"]) == {"recall@1", "recall@5", "recall@10",
                                          "ndcg@1", "ndcg@5", "ndcg@10"}
    check_metrics(result["test_result"])


def test_time_budget_stops_between_epochs(tiny_config_dict):
    result, built = run("SASRecAWR", "tiny", config_dict={
        **tiny_config_dict, "epochs": 50, "train_time_budget": 0})
    trainer = built.trainer
    # the first epoch always runs; the budget of 0 s stops the second from starting
    assert trainer.start_epoch == 0 and trainer.best_valid_result is not None
    assert result["best_valid_result"] == trainer.best_valid_result
    check_metrics(result["test_result"])


def test_same_seed_same_results(tiny_config_dict):
    first = run_recbole_awrsr("SASRecAWR", "tiny", config_dict=tiny_config_dict)
    second = run_recbole_awrsr("SASRecAWR", "tiny", config_dict=tiny_config_dict)
    assert first["test_result"] == second["test_result"]


def test_cli_argument_parsing():
    model, dataset, files, config, saved = parse_run_args(
        ["--model=STOSA", "--config_files=a.yaml b.yaml", "--learning_rate=0.01", "--no-save"])
    assert (model, dataset, files, saved) == ("STOSA", "ml-100k", ["a.yaml", "b.yaml"], False)
    assert config == {"learning_rate": "0.01"}
    assert parse_run_args([])[:2] == ("SASRecAWR", "ml-100k")
    with pytest.raises(SystemExit):
        parse_run_args(["--epochs", "3"])  # keys need --key=value


@pytest.mark.parametrize("args, fragment", [
    (["--refine_mechanism=stochastic"], "use --model=STOSAAWR"),
    (["--dataset=ml-1m", "--data_path=nowhere"], "python -m recbole_awrsr.data convert ml-1m"),
])
def test_console_script_and_script_fail_cleanly_on_bad_config(tmp_path, args, fragment):
    console_script = str(Path(sys.executable).parent / "recbole-awrsr")
    for command in ([console_script], [sys.executable, str(REPO_ROOT / "run_recbole_awrsr.py")]):
        done = subprocess.run(command + args, capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert done.returncode == 2
        assert fragment in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "saved").exists()


def test_trainers_started_in_the_same_second_get_different_checkpoints(tiny_config_dict):
    from conftest import build

    config, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict)
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    names = {trainer_class(config, model).saved_model_file for _ in range(5)}
    assert len(names) == 5
    assert all(name.endswith(".pth") and "SASRecAWR" in name for name in names)
