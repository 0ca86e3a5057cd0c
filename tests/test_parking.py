"""Parked runs: an unfinished cell bundled into its grid's parked/ folder continues on another
machine (here: a copy of the grid without its checkpoints folder) with the row an
uninterrupted run gets."""

import glob
import io
import os
import shutil
import signal
import tarfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from recbole_awrsr import compare, parking
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.compare import KEYS, main
from recbole_awrsr.compat import load_checkpoint
from recbole_awrsr.errors import CheckpointError
from recbole_awrsr.history import history_path
from recbole_awrsr.trainer import last_state_path
from test_resume import kill_at


def grid_argv(tiny_config_dict, out, epochs=4):
    keys = {k: v for k, v in tiny_config_dict.items() if k not in {"checkpoint_dir", "seed"}}
    keys["epochs"] = epochs
    return (["--datasets", "tiny", "--seeds", "1", "--models", "SASRecAWR", "--mechanisms", "simple",
             "--out", str(out)] + [f"--{k}={v}" for k, v in keys.items()])


def killed_grid(tiny_config_dict, out, monkeypatch, epoch=2):
    """A comparison whose `simple` cell dies as ``epoch`` begins; returns its checkpoint file."""
    real_run_cell = compare.run_cell

    def killed_in_simple(cell, *args):
        if cell.mechanism == "simple":
            kill_at(monkeypatch, epoch)
        return real_run_cell(cell, *args)

    monkeypatch.setattr(compare, "run_cell", killed_in_simple)
    assert main(grid_argv(tiny_config_dict, out)) == 1  # the cell is reported as failed
    monkeypatch.undo()
    [checkpoint] = parking.unfinished_runs(out)
    return checkpoint


def read(out):
    return pd.read_csv(out / "results.csv", dtype={k: str for k in KEYS})


def test_a_parked_run_continues_on_another_machine(tiny_config_dict, tmp_path, monkeypatch, capsys):
    whole, cut, moved = tmp_path / "whole", tmp_path / "cut", tmp_path / "moved"
    assert main(grid_argv(tiny_config_dict, whole)) == 0
    checkpoint = killed_grid(tiny_config_dict, cut, monkeypatch)

    assert cli_main(["park", str(cut)]) == 0
    parked = parking.parked_path(checkpoint)
    assert f"parked {parked} (state after epoch 1" in capsys.readouterr().out
    bundle = load_checkpoint(parked)  # the safe loader reads it
    assert bundle["epoch"] == 1 and "optimizer" in bundle
    assert "optimizer" not in bundle["parked_best"]
    assert bundle["parked_best"]["epoch"] <= 1
    assert list(pd.read_csv(io.StringIO(bundle["parked_history"]))["epoch"]) == [0, 1]

    # another machine: the committed files (rows, parked/), no checkpoints folder
    shutil.copytree(cut, moved, ignore=shutil.ignore_patterns("checkpoints"))
    # and a bundle of a cell whose row is there already (it ended elsewhere): it goes too
    none_row = read(moved).iloc[0]
    assert none_row["mechanism"] == "none"
    stale = moved / "parked" / (compare.cell_stem(compare.record_cell(none_row), none_row["layers"]) + ".pth")
    shutil.copy(moved / "parked" / parked.rsplit("/", 1)[1], stale)
    assert main(grid_argv(tiny_config_dict, moved)) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    rows, reference = read(moved), read(whole)
    metrics = [c for c in reference.columns if c.startswith(("valid_", "test_"))] + ["epochs", "best_epoch"]
    pd.testing.assert_frame_equal(rows[metrics], reference[metrics])
    assert int(rows["resumed_epoch"].iloc[1]) == 2
    # the row is written: the bundle is not needed again, nor are the checkpoints
    assert not list((moved / "parked").iterdir())
    assert not list((moved / "checkpoints").glob("*.pth"))


def test_unpark_keeps_a_state_that_is_further_on(tiny_config_dict, tmp_path, monkeypatch):
    out = tmp_path / "grid"
    checkpoint = killed_grid(tiny_config_dict, out, monkeypatch, epoch=3)
    parking.park(out)
    local = load_checkpoint(last_state_path(checkpoint))
    assert local["epoch"] == 2
    assert parking.unpark(checkpoint) is None  # the same epoch: nothing to do
    older = {**local, "epoch": 0, "elapsed": -1.0}
    torch.save(older, last_state_path(checkpoint))
    assert parking.unpark(tmp_path / "other" / "checkpoints" / "cell.pth") is None  # none parked

    # a parked state further on than the checkpoints folder's is put back, weights and history
    bundle = load_checkpoint(parking.parked_path(checkpoint))
    with open(history_path(checkpoint), "w", encoding="utf-8") as handle:
        handle.write("stale\n")
    os.remove(checkpoint)
    assert parking.unpark(checkpoint) == 2
    state = load_checkpoint(last_state_path(checkpoint))
    assert state["epoch"] == 2 and state["elapsed"] == local["elapsed"]
    assert "parked_best" not in state and "parked_history" not in state
    best = load_checkpoint(checkpoint)
    assert best["epoch"] == bundle["parked_best"]["epoch"]
    for name, weight in bundle["parked_best"]["state_dict"].items():
        assert torch.equal(best["state_dict"][name], weight), name
    with open(history_path(checkpoint), encoding="utf-8") as handle:
        assert handle.read() == bundle["parked_history"]


def test_a_best_checkpoint_newer_than_the_state_is_read_again(tiny_config_dict, tmp_path, monkeypatch):
    """A running grid may write a new best epoch between the two reads: such a pair is not parked."""
    out = tmp_path / "grid"
    checkpoint = killed_grid(tiny_config_dict, out, monkeypatch, epoch=3)
    best = load_checkpoint(checkpoint)
    torch.save({**best, "epoch": 7, "best_valid_score": 1.0}, checkpoint)
    monkeypatch.setattr(parking, "READ_WAIT_S", 0.0)
    with pytest.raises(CheckpointError, match=r"is of epoch 7, its state .* of epoch 2"):
        parking.park(out)
    assert not (out / "parked").exists()


def test_a_run_that_ended_is_not_parked(tiny_config_dict, tmp_path, monkeypatch):
    out = tmp_path / "grid"
    checkpoint = killed_grid(tiny_config_dict, out, monkeypatch)
    assert parking.read_run(checkpoint) is not None
    os.remove(last_state_path(checkpoint))  # it ended (the trainer removes its state)
    assert parking.read_run(checkpoint) is None
    assert parking.park(out) == []


def test_park_refuses_what_is_not_a_grid(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        parking.main([str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert "nowhere is not a folder" in capsys.readouterr().err
    assert parking.main([str(tmp_path)]) == 0
    assert "no unfinished runs" in capsys.readouterr().out


def test_a_parked_search_continues_on_another_machine(tmp_path, capsys, heads_search):
    """A search stopped while its second trial trains, parked, and continued from a copy of its
    committed files (no Ray folder, no checkpoints): the ended trial is not trained again, the
    stopped one goes on from its reports, and the search chooses as an uninterrupted one."""
    import ray

    from recbole_awrsr.cli import main as cli_main

    def argv(out):
        return heads_search(out, epochs=12)

    def stop_in_second_trial():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            progress = sorted(glob.glob(str(tmp_path / "cut" / "ray" / "search" / "*" / "progress.csv")))
            if len(progress) == 2 and len(Path(progress[1]).read_text().splitlines()) >= 3:
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.05)

    try:
        with pytest.raises(CheckpointError, match="no saved Ray search"):
            parking.park_search(tmp_path / "nowhere")
        stopper = threading.Thread(target=stop_in_second_trial, daemon=True)
        stopper.start()
        assert cli_main(argv("cut")) == 2
        stopper.join()
        cut = pd.read_csv(tmp_path / "cut" / "trials.csv")
        # the second trial stopped after some reports (Ray saves it as PENDING or RUNNING)
        assert cut.loc[0, "status"] == "TERMINATED"
        assert cut.loc[1, "status"] in {"RUNNING", "PENDING", "PAUSED"}
        # Ray saving its state after trials.csv was written: the search is running
        [state] = sorted(glob.glob(str(tmp_path / "cut" / "ray" / "search" / "experiment_state-*.json")))[-1:]
        written = os.path.getmtime(tmp_path / "cut" / "trials.csv")
        os.utime(state, (written + 5, written + 5))
        with pytest.raises(CheckpointError, match="is running .* stop it first"):
            parking.park_search(tmp_path / "cut")
        os.utime(state, (written - 5, written - 5))
        capsys.readouterr()
        assert cli_main(["park", "cut"]) == 0
        bundle = tmp_path / "cut" / "parked" / parking.SEARCH_BUNDLE
        assert f"parked cut/parked/{parking.SEARCH_BUNDLE}" in capsys.readouterr().out
        with tarfile.open(bundle) as packed:
            names = packed.getnames()
        ended, stopped = (sorted({n.split("/")[1] for n in names if n.count("/") >= 1
                                  and n.split("/")[1].startswith("train_trial_")}))
        assert not [n for n in names if n.startswith(f"search/{ended}/checkpoint_")]
        best_names = [n for n in names if n.startswith(f"search/{stopped}/checkpoint_")
                      and n.endswith("/model.pth")]
        assert best_names
        with tarfile.open(bundle) as packed:  # best weights without their optimizer
            for name in best_names:
                packed_best = torch.load(io.BytesIO(packed.extractfile(name).read()), weights_only=False)
                assert "optimizer" not in packed_best and packed_best["state_dict"]
        earlier = pd.read_csv(tmp_path / "cut" / "ray" / "search" / stopped / "progress.csv")
        ended_reports = (tmp_path / "cut" / "ray" / "search" / ended / "progress.csv").read_text()

        # another machine: only what is committed (no ray/, no checkpoints/)
        shutil.copytree(tmp_path / "cut", tmp_path / "moved",
                        ignore=shutil.ignore_patterns("ray", "checkpoints"))
        assert cli_main(argv("moved")) == 0
        assert "unpacked the parked search" in capsys.readouterr().err
    finally:
        ray.shutdown()
    trials = pd.read_csv(tmp_path / "moved" / "trials.csv")
    assert list(trials["status"]) == ["TERMINATED", "TERMINATED"]
    assert list(trials["epochs_reported"]) == [12, 12]
    # the ended trial's reports are the first machine's; the stopped one kept its early reports
    first_trial = cut.loc[0, "trial_id"]
    assert (trials.set_index("trial_id").loc[first_trial, "valid_score"]
            == cut.set_index("trial_id").loc[first_trial, "valid_score"])
    assert (tmp_path / "moved" / "ray" / "search" / ended / "progress.csv").read_text() == ended_reports
    resumed = pd.read_csv(tmp_path / "moved" / "ray" / "search" / stopped / "progress.csv")
    first = earlier.iloc[0]
    assert resumed.iloc[0]["timestamp"] == first["timestamp"] and resumed.iloc[0]["epoch"] == first["epoch"]
    assert not (tmp_path / "moved" / "parked" / parking.SEARCH_BUNDLE).exists()
    assert (tmp_path / "moved" / "best.yaml").exists()
    with pytest.raises(CheckpointError, match="has ended"):  # nothing left to carry over
        parking.park_search(tmp_path / "moved")
