"""The trainer's training history: what it records, and that recording changes nothing."""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import build
from recbole_awrsr import get_trainer
from recbole_awrsr.history import history_path
from recbole_awrsr.quick_start import run


def test_history_changes_no_metric_and_is_written_per_epoch(tiny_config_dict):
    config = {**tiny_config_dict, "epochs": 3, "refine_mechanism": "simple"}
    # separate folders: checkpoint names only differ by the second they were made in
    with_history, built_on = run("SASRecAWR", "tiny", config_dict={
        **config, "save_history": True, "checkpoint_dir": "on"})
    without, built_off = run("SASRecAWR", "tiny", config_dict={
        **config, "save_history": False, "checkpoint_dir": "off"})
    trainer_on, trainer_off = built_on.trainer, built_off.trainer

    assert with_history["test_result"] == without["test_result"]
    assert with_history["best_valid_result"] == without["best_valid_result"]
    assert with_history["best_valid_score"] == without["best_valid_score"]

    on_file = Path(history_path(trainer_on.saved_model_file))
    assert on_file.parent.resolve() == Path("on").resolve()
    assert on_file.name.endswith(".history.csv") and on_file.exists()
    assert not Path(history_path(trainer_off.saved_model_file)).exists()

    history = pd.read_csv(on_file)
    assert list(history["epoch"]) == [0, 1, 2]
    assert set(history["model"]) == {"SASRecAWR simple"}
    # the validation columns are the trainer's own validation results, epoch by epoch
    assert history["valid_score"].max() == pytest.approx(with_history["best_valid_score"])
    # RecBole keeps the last of equally good epochs
    best = history[history["valid_score"] == history["valid_score"].max()].iloc[-1]
    for name, value in with_history["best_valid_result"].items():
        assert best[name] == pytest.approx(value)
    assert (history["grad_norm"] > 0).all() and (history["train_time_s"] > 0).all()
    # RecBole's logged loss (sum over batches) and its per-step mean
    assert history["train_loss"].tolist() == pytest.approx(
        [trainer_on.train_loss_dict[e] for e in range(3)])
    assert not list(on_file.parent.glob(".*.tmp*")), "temporary files left behind"


def test_grad_norm_equals_an_independent_computation_one_step(tiny_config_dict):
    """One batch holds all training rows, dropout is off: epoch 0's only step has the
    gradient of the initial model's loss on the whole training set."""
    settings = {**tiny_config_dict, "epochs": 1, "train_batch_size": 4096,
                "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
    trainer = run("SASRecAWR", "tiny", config_dict=settings, saved=False)[1].trainer
    history = pd.read_csv(history_path(trainer.saved_model_file))
    assert history["steps"].tolist() == [1]

    config, net, train_data, _, _ = build("SASRecAWR", config_dict=settings)
    batches = list(train_data)
    assert len(batches) == 1
    net.train()
    net.calculate_loss(batches[0]).backward()
    flat = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])
    expected = flat.double().pow(2).sum().sqrt().item()

    assert expected > 0
    assert history["grad_norm"][0] == pytest.approx(expected, rel=1e-5)
    assert history["grad_norm_last"][0] == pytest.approx(expected, rel=1e-5)


def test_grad_norm_is_the_mean_over_the_epochs_steps(tiny_config_dict):
    settings = {**tiny_config_dict, "epochs": 2, "train_batch_size": 4}
    config, net, train_data, valid_data, _ = build("SASRecAWR", config_dict=settings)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)

    # an independent record: every gradient the optimizer applies, read just before the step
    per_epoch, original_step = [], trainer.optimizer.step

    def step(*args, **kwargs):
        flat = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])
        per_epoch[-1].append(flat.double().norm().item())
        return original_step(*args, **kwargs)

    trainer.optimizer.step = step
    original_epoch = trainer._train_epoch

    def train_epoch(*args, **kwargs):
        per_epoch.append([])
        return original_epoch(*args, **kwargs)

    trainer._train_epoch = train_epoch
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)

    history = pd.read_csv(history_path(trainer.saved_model_file))
    assert len(per_epoch) == 2 and all(len(norms) > 2 for norms in per_epoch)
    for row, norms in zip(history.itertuples(), per_epoch):
        assert row.steps == len(norms)
        assert row.grad_norm == pytest.approx(sum(norms) / len(norms), rel=1e-6)
        assert row.grad_norm_last == pytest.approx(norms[-1], rel=1e-6)
        assert row.train_loss_mean == pytest.approx(row.train_loss / len(norms))
    assert not math.isclose(per_epoch[0][0], per_epoch[0][-1])


def test_history_rows_of_earlier_epochs_survive_a_resume(tiny_config_dict):
    settings = {**tiny_config_dict, "epochs": 2}
    model_file = run("SASRecAWR", "tiny", config_dict=settings)[1].trainer.saved_model_file

    config, net, train_data, valid_data, _ = build("SASRecAWR", config_dict={**settings, "epochs": 4})
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer.resume_checkpoint(model_file)
    resumed_at = trainer.start_epoch
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)

    history = pd.read_csv(history_path(model_file))
    assert list(history["epoch"]) == list(range(4))
    assert resumed_at > 0
