"""Attention sharpness: relative row entropy and mass on the most recent keys, by hand."""

import math

import pandas as pd
import pytest
import torch

from recbole_awrsr.model.sharpness import allowed_keys, model_sharpness, row_sharpness
from recbole_awrsr.quick_start import run
from recbole_awrsr.history import history_path

from conftest import build, random_sequences


def test_allowed_keys_is_causal_and_skips_padding():
    seq = torch.tensor([[5, 6, 7, 0]])
    allowed = allowed_keys(seq)[0, 0]
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_uniform_one_hot_and_hand_computed_rows():
    # one sequence of 7 items, one head; rows 0..6 are real, L = i + 1
    seq = torch.arange(1, 8).unsqueeze(0)
    allowed = allowed_keys(seq)
    uniform = allowed.float() / allowed.float().sum(-1, keepdim=True)
    result = row_sharpness(uniform, allowed, seq != 0, recent=5)
    assert result["entropy"] == pytest.approx(1.0)
    # rows with more than 5 keys: L = 6 and L = 7 -> mean(5/6, 5/7)
    assert result["recent"] == pytest.approx((5 / 6 + 5 / 7) / 2)

    one_hot_oldest = torch.zeros(1, 1, 7, 7)
    one_hot_oldest[..., 0] = 1.0
    result = row_sharpness(one_hot_oldest, allowed, seq != 0, recent=5)
    assert result["entropy"] == pytest.approx(0.0, abs=1e-6)
    assert result["recent"] == pytest.approx(0.0)  # key 0 is not among the 5 newest of rows 5, 6

    # row 2 (L = 3) with weights (0.5, 0.25, 0.25); only rows with L >= 2 count: rows 1..6
    weights = uniform.clone()
    weights[0, 0, 2, :3] = torch.tensor([0.5, 0.25, 0.25])
    entropy_row2 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    expected = (5 * 1.0 + entropy_row2) / 6
    assert row_sharpness(weights, allowed, seq != 0)["entropy"] == pytest.approx(expected)


def test_signed_rows_are_measured_by_their_absolute_weight():
    # value's Ã mixes positions with signed weights: a row is measured as |w| / sum |w|
    seq = torch.arange(1, 8).unsqueeze(0)
    allowed = allowed_keys(seq)
    uniform = allowed.float() / allowed.float().sum(-1, keepdim=True)
    signed = uniform.clone()
    signed[0, 0, 2, :3] = torch.tensor([1.0, -0.5, -0.5])  # sums to 0, |w| = (0.5, 0.25, 0.25)
    signed[0, 0, 6] = -2.0 * signed[0, 0, 6]  # a negated, rescaled uniform row: still uniform
    entropy_row2 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    result = row_sharpness(signed, allowed, seq != 0, recent=5)
    assert result["entropy"] == pytest.approx((5 * 1.0 + entropy_row2) / 6)
    assert result["recent"] == pytest.approx((5 / 6 + 5 / 7) / 2)
    # weight on blocked keys does not count, and a row with none on its allowed keys is skipped
    leaky = uniform.clone()
    leaky[0, 0, 1, 5] = 3.0
    leaky[0, 0, 3] = 0.0
    assert row_sharpness(leaky, allowed, seq != 0)["entropy"] == pytest.approx(1.0)


def test_padding_rows_are_not_counted():
    seq = torch.tensor([[3, 4, 0, 0]])
    allowed = allowed_keys(seq)
    weights = allowed.float() / allowed.float().sum(-1, keepdim=True).clamp_min(1)
    weights[0, 0, 3] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # a padding row, sharp: ignored
    assert row_sharpness(weights, allowed, seq != 0)["entropy"] == pytest.approx(1.0)
    assert math.isnan(row_sharpness(weights, allowed, seq != 0)["recent"])  # no row has L > 5


@pytest.mark.parametrize("model_name, mechanism", [("SASRecAWR", "none"), ("SASRecAWR", "simple"),
                                                   ("SASRecAWR", "value"), ("STOSAAWR", "stochastic")])
def test_model_sharpness_matches_the_kept_weights(tiny_config_dict, model_name, mechanism):
    config, net, train_data, _, _ = build(model_name, config_dict=tiny_config_dict,
                                          refine_mechanism=mechanism)
    if mechanism == "value":  # move W_v' off the identity so that Ã has negative entries
        with torch.no_grad():
            for layer in net.attention_layers():
                layer.refinement.w_value.add_(0.5 * torch.randn_like(layer.refinement.w_value))
    seqs, _ = random_sequences(16, config["MAX_ITEM_LIST_LENGTH"], train_data.dataset.item_num, seed=3)
    net.train()
    state = torch.get_rng_state()
    result = model_sharpness(net, seqs)
    assert torch.equal(torch.get_rng_state(), state) and net.training
    module = net.attention_layers()[-1]
    assert module.keep_weights is False
    module.keep_weights = True
    net.eval()
    with torch.no_grad():
        net.encode(seqs)
    allowed = allowed_keys(seqs)
    expected_refined = row_sharpness(module.refined_weights, allowed, seqs != 0)
    expected_first = row_sharpness(module.first_order_weights, allowed, seqs != 0)
    assert result["refined_entropy"] == pytest.approx(expected_refined["entropy"])
    assert result["first_entropy"] == pytest.approx(expected_first["entropy"])
    assert 0.0 < result["refined_entropy"] <= 1.0 + 1e-6
    assert 0.0 < result["refined_recent"] <= 1.0 + 1e-6
    if mechanism == "value":
        assert (module.refined_weights < 0).any()  # the case the |w| measure is for
    if mechanism == "none":
        assert result["refined_entropy"] == pytest.approx(result["first_entropy"])
        assert result["refined_recent"] == pytest.approx(result["first_recent"])


def test_history_and_trainer_report_sharpness_and_epochs(tiny_config_dict):
    result, built = run("SASRecAWR", "tiny", config_dict={**tiny_config_dict, "epochs": 3})
    trainer = built.trainer
    history = pd.read_csv(history_path(trainer.saved_model_file))
    for column in ("refined_entropy", "refined_recent", "first_entropy", "first_recent"):
        assert history[column].notna().all() and (history[column] > 0).all()
    assert (history["refined_entropy"] <= 1.0 + 1e-6).all()
    assert trainer.epochs_trained == 3
    # RecBole keeps the last of equally good epochs
    scores = history["valid_score"].tolist()
    assert trainer.best_epoch == max(i for i, s in enumerate(scores) if s == max(scores))
    assert result["best_valid_score"] == pytest.approx(scores[trainer.best_epoch])
