"""Resumable runs: a run killed between epochs and started again gives the numbers of a run
that never stopped."""

import os

import pandas as pd
import pytest
import torch
from recbole.trainer import Trainer

from recbole_awrsr import compare
from recbole_awrsr.compare import KEYS, main
from recbole_awrsr.errors import CheckpointError, ConfigurationError
from recbole_awrsr.history import history_path
from recbole_awrsr.quick_start import run
from recbole_awrsr.trainer import last_state_path

#: history columns that are measured clocks, different in every run
CLOCKS = {"train_time_s", "valid_time_s"}


class Killed(Exception):
    """Stands for the process being killed."""


def kill_at(monkeypatch, epoch):
    """Make RecBole's training step die as epoch ``epoch`` begins (after the plugin has
    written the state of the epoch before)."""
    real = Trainer._train_epoch

    def dying(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == epoch:
            raise Killed(f"killed at epoch {epoch}")
        return real(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", dying)


def killed_run(monkeypatch, model, config, path, epoch):
    """Start a resumable run that dies as ``epoch`` begins."""
    with monkeypatch.context() as patch:
        kill_at(patch, epoch)
        with pytest.raises(Killed):
            run(model, "tiny", config_dict=config, checkpoint_file=path)


def comparable(history):
    return history.drop(columns=[c for c in history.columns if c in CLOCKS])


@pytest.mark.parametrize("model, settings", [
    # dropout on, so the resumed run must continue torch's random stream exactly
    ("SASRecAWR", {"refine_mechanism": "simple", "hidden_dropout_prob": 0.3}),
    # BPR with a sampled negative per target: numpy's random stream as well
    ("STOSAAWR", {"refine_mechanism": "stochastic"}),
])
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tiny_config_dict, tmp_path, monkeypatch,
                                                            model, settings):
    config = {**tiny_config_dict, **settings, "epochs": 5, "stopping_step": 10}
    whole_file, cut_file = tmp_path / "whole" / "cell.pth", tmp_path / "cut" / "cell.pth"
    whole, whole_built = run(model, "tiny", config_dict=config, checkpoint_file=whole_file)

    killed_run(monkeypatch, model, config, cut_file, 3)
    state = torch.load(last_state_path(cut_file), weights_only=False)
    assert state["epoch"] == 2 and state["epochs_trained"] == 3
    assert cut_file.exists() and state["elapsed"] > 0
    assert list(pd.read_csv(history_path(cut_file))["epoch"]) == [0, 1, 2]

    resumed, resumed_built = run(model, "tiny", config_dict=config, checkpoint_file=cut_file)
    trainer = resumed_built.trainer
    assert trainer.resumed_epoch == 3 and trainer.start_epoch == 3
    assert trainer.elapsed_before == pytest.approx(state["elapsed"])
    assert trainer.epochs_trained == whole_built.trainer.epochs_trained == 5
    assert trainer.best_epoch == whole_built.trainer.best_epoch
    assert resumed["best_valid_score"] == whole["best_valid_score"]
    assert resumed["best_valid_result"] == whole["best_valid_result"]
    assert resumed["test_result"] == whole["test_result"]
    for name, weight in whole_built.model.state_dict().items():
        assert torch.equal(weight, resumed_built.model.state_dict()[name]), name
    pd.testing.assert_frame_equal(comparable(pd.read_csv(history_path(cut_file))),
                                  comparable(pd.read_csv(history_path(whole_file))))
    # a finished run leaves no resumable state; a run without checkpoint_file writes none
    assert not os.path.exists(last_state_path(cut_file))
    assert not list((tmp_path / "whole").glob("*.last.pth"))


def test_state_without_its_best_checkpoint_starts_over(tiny_config_dict, tmp_path, monkeypatch):
    config = {**tiny_config_dict, "epochs": 3}
    path = tmp_path / "cell.pth"
    killed_run(monkeypatch, "SASRecAWR", config, path, 2)
    path.unlink()
    _, built = run("SASRecAWR", "tiny", config_dict=config, checkpoint_file=path)
    assert built.trainer.resumed_epoch is None and built.trainer.epochs_trained == 3


def test_state_of_another_model_is_refused(tiny_config_dict, tmp_path, monkeypatch):
    config = {**tiny_config_dict, "epochs": 3}
    path = tmp_path / "cell.pth"
    killed_run(monkeypatch, "SASRecAWR", config, path, 2)
    with pytest.raises(CheckpointError, match=r"cell\.last\.pth holds a SASRecAWR run.*STOSA"):
        run("STOSA", "tiny", config_dict=config, checkpoint_file=path)


def test_a_distributed_run_cannot_be_resumable(tiny_config_dict, tmp_path):
    with pytest.raises(ConfigurationError, match="checkpoint_file"):
        run("SASRecAWR", "tiny", config_dict={**tiny_config_dict, "local_rank": 0},
            checkpoint_file=tmp_path / "cell.pth")


def test_comparison_continues_a_killed_cell(tiny_config_dict, tmp_path, monkeypatch):
    """The cell that was training when the comparison died picks up at its last epoch and
    gets the row an uninterrupted comparison gets."""
    keys = {k: v for k, v in tiny_config_dict.items() if k not in {"checkpoint_dir", "seed"}}
    keys["epochs"] = 4

    def argv(out):
        return ["--datasets", "tiny", "--seeds", "1", "--models", "SASRecAWR", "--mechanisms",
                "simple", "--out", str(tmp_path / out)] + [f"--{k}={v}" for k, v in keys.items()]

    assert main(argv("whole")) == 0
    real_run_cell = compare.run_cell

    def killed_in_simple(cell, *args):
        if cell.mechanism == "simple":
            kill_at(monkeypatch, 2)
        return real_run_cell(cell, *args)

    monkeypatch.setattr(compare, "run_cell", killed_in_simple)
    assert main(argv("cut")) == 1  # the comparison reports the cell as failed
    monkeypatch.undo()
    left = list((tmp_path / "cut" / "checkpoints").glob("*.last.pth"))
    assert len(left) == 1 and left[0].name.startswith("tiny_SASRecAWR_simple_L2_s1_")
    assert main(argv("cut")) == 0

    whole = pd.read_csv(tmp_path / "whole" / "results.csv", dtype={k: str for k in KEYS})
    cut = pd.read_csv(tmp_path / "cut" / "results.csv", dtype={k: str for k in KEYS})
    assert list(cut["mechanism"]) == ["none", "simple"]
    assert cut["resumed_epoch"].isna().tolist() == [True, False]
    assert int(cut["resumed_epoch"].iloc[1]) == 2 and whole["resumed_epoch"].isna().all()
    metrics = [c for c in whole.columns if c.startswith(("valid_", "test_"))] + ["epochs", "best_epoch"]
    pd.testing.assert_frame_equal(cut[metrics], whole[metrics])
    assert not list((tmp_path / "cut" / "checkpoints").glob("*.pth"))
