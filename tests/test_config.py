"""Config: our YAML overlay, the stack fixes, value parsing and early configuration errors."""

import subprocess
import sys

import pytest
import torch

from recbole_awrsr import Config, get_model, run_recbole_awrsr
from recbole_awrsr.config import _parse_value, properties_dir
from recbole_awrsr.errors import ConfigurationError, MissingDatasetError


@pytest.mark.parametrize("model", ["SASRecAWR", "SASRec", "GRU4Rec"])
def test_protocol_defaults_apply_to_ours_and_baselines(model):
    config = Config(model=model, dataset="ml-100k")
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert config["metrics"] == ["Recall", "NDCG"]
    assert config["topk"] == [1, 5, 10]
    assert config["valid_metric"] == "NDCG@5"
    assert config["stopping_step"] == 20
    assert "timestamp" in config["load_col"]["inter"]


def test_model_yaml_is_overlaid():
    config = Config(model="SASRecAWR", dataset="ml-100k")
    assert properties_dir().joinpath("model", "SASRecAWR.yaml").is_file()
    assert config["refine_mechanism"] == "value"
    assert config["refine_share_heads"] is True
    assert config["refine_input"] == "probs"
    assert config["train_targets"] == "all"


def test_negative_sampling_follows_the_loss_unless_set():
    ce = Config(model="SASRec", dataset="ml-100k", config_dict={"loss_type": "CE"})
    assert ce["train_neg_sample_args"]["distribution"] == "none"
    bpr = Config(model="SASRec", dataset="ml-100k", config_dict={"loss_type": "BPR"})
    assert bpr["train_neg_sample_args"]["distribution"] == "uniform"
    assert bpr["train_neg_sample_args"]["sample_num"] == 1
    chosen = Config(model="SASRec", dataset="ml-100k", config_dict={
        "loss_type": "BPR", "train_neg_sample_args": {"distribution": "popularity", "sample_num": 3}})
    assert chosen["train_neg_sample_args"]["distribution"] == "popularity"
    assert chosen["train_neg_sample_args"]["sample_num"] == 3


def test_anomaly_detection_is_off_after_resolving_models():
    torch.autograd.set_detect_anomaly(True)
    try:
        get_model("SINE")  # the RecBole module that switches it on at import
        assert not torch.is_anomaly_enabled()
        torch.autograd.set_detect_anomaly(True)
        Config(model="SASRec", dataset="ml-100k")
        assert not torch.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)


def test_command_line_values_parse_as_literals_not_variables():
    # RecBole's eval() turned "value" into one of its local variables
    assert _parse_value("value") == "value"
    assert _parse_value("param") == "param"
    assert _parse_value("[1, 5, 10]") == [1, 5, 10]
    assert _parse_value("1e-3") == pytest.approx(0.001)
    assert _parse_value("true") is True and _parse_value("False") is False
    assert _parse_value("None") is None
    config = Config(model="SASRecAWR", dataset="ml-100k",
                    config_dict={"refine_mechanism": "value", "epochs": "3"})
    assert config["refine_mechanism"] == "value"
    assert config["epochs"] == 3


def test_sys_argv_is_not_read(monkeypatch):
    monkeypatch.setattr("sys.argv", ["pytest", "--epochs=999", "--refine_mechanism=bogus"])
    config = Config(model="SASRecAWR", dataset="ml-100k")
    assert config["epochs"] != 999
    assert config["refine_mechanism"] == "value"


@pytest.mark.parametrize("overrides, fragment", [
    ({"refine_mechanism": "stochastic"}, "STOSAAWR"),
    ({"refine_mechanism": "bogus"}, "none, simple, value, additive"),
    ({"refine_input": "logits"}, "probs, scores"),
    ({"refine_share_heads": "maybe"}, "true or false"),
    ({"train_targets": "some"}, "'last'"),
    ({"loss_type": "MSE"}, "CE or BPR"),
])
def test_bad_model_config_fails_in_config(overrides, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        Config(model="SASRecAWR", dataset="ml-100k", config_dict=overrides)


def test_all_targets_on_a_baseline_is_refused():
    with pytest.raises(ConfigurationError, match="trains on the last one only"):
        Config(model="SASRec", dataset="ml-100k", config_dict={"train_targets": "all"})


def test_unknown_model_name_is_explained():
    with pytest.raises(ConfigurationError, match="neither a recbole_awrsr model"):
        get_model("SASRecc")


def test_missing_atomic_files_fail_before_training(tmp_path):
    checkpoints = tmp_path / "ckpt"
    with pytest.raises(MissingDatasetError, match=r"recbole_awrsr.data convert nosuch"):
        run_recbole_awrsr("SASRecAWR", "nosuch", config_dict={
            "data_path": str(tmp_path / "atomic"), "checkpoint_dir": str(checkpoints)})
    assert not checkpoints.exists()


def test_stochastic_fails_before_any_data_is_read(tmp_path):
    # the dataset does not exist either: the configuration error must come first
    with pytest.raises(ConfigurationError, match="STOSAAWR"):
        run_recbole_awrsr("SASRecAWR", "nosuch", config_dict={
            "data_path": str(tmp_path), "refine_mechanism": "stochastic"})


def test_importing_the_models_leaves_anomaly_detection_off():
    # a fresh interpreter: in this one RecBole's import side effect has long happened
    code = ("import torch, recbole_awrsr.model.attention, recbole_awrsr.model; "
            "print(torch.is_anomaly_enabled())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_is_number_refuses_yaml_booleans():
    import numbers

    from recbole_awrsr.errors import is_number

    assert is_number(3) and not is_number(True) and not is_number(2.5) and not is_number("3")
    assert is_number(2.5, numbers.Real) and is_number(0, numbers.Real)
    assert not is_number(False, numbers.Real)
