"""The YAML defaults: one file per class along the model's chain, no key stated twice."""

import pytest
import yaml

from recbole_awrsr import Config, get_model
from recbole_awrsr.config import model_yaml_chain, properties_dir, recbole_properties_dir
from recbole_awrsr.model import __all__ as PLUGIN_MODELS


def keys_of(path):
    return yaml.safe_load(path.read_text()) or {}


def test_chain_reads_each_class_file_base_first():
    ours, theirs = properties_dir() / "model", recbole_properties_dir() / "model"
    assert model_yaml_chain(get_model("SASRecAWR")) == [theirs / "SASRec.yaml", ours / "SASRecAWR.yaml"]
    assert model_yaml_chain(get_model("STOSAAWR")) == [ours / "STOSA.yaml", ours / "STOSAAWR.yaml"]
    assert model_yaml_chain(get_model("STOSA")) == [ours / "STOSA.yaml"]
    # a RecBole model's own file is read by RecBole; nothing of ours applies
    assert model_yaml_chain(get_model("SASRec")) == []


@pytest.mark.parametrize("model", PLUGIN_MODELS)
def test_no_key_is_stated_twice_along_a_chain(model):
    """Every file states only what its class adds: no key of one file is repeated by a
    later file on the chain, our overall.yaml included, and no dataset YAML restates one."""
    files = [properties_dir() / "overall.yaml", *model_yaml_chain(get_model(model))]
    files += sorted((properties_dir() / "dataset").glob("*.yaml"))
    seen = {}
    for path in files:
        for key in keys_of(path):
            if path.parent.name == "dataset" and key in seen and seen[key].parent.name == "dataset":
                continue  # different datasets may each set their own value
            assert key not in seen, f"{key} stated in {seen.get(key)} and again in {path}"
            seen[key] = path


@pytest.mark.parametrize("model, expected", [
    # SASRec's defaults come from RecBole's SASRec.yaml, ours on top
    ("SASRecAWR", {"n_layers": 2, "hidden_dropout_prob": 0.5, "loss_type": "CE",
                   "train_batch_size": 128, "refine_mechanism": "value", "train_targets": "all"}),
    # STOSAAWR inherits everything of STOSA.yaml and adds the refinement keys
    ("STOSAAWR", {"n_layers": 1, "n_heads": 4, "loss_type": "BPR", "pvn_weight": 0.005,
                  "train_batch_size": 256, "refine_mechanism": "simple", "refine_input": "probs"}),
])
def test_values_arrive_through_the_chain(model, expected):
    config = Config(model, "ml-100k")
    for key, value in expected.items():
        assert config[key] == value, key
    # the protocol's load_col (overall.yaml) reaches every dataset, no budget by default
    assert config["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}
    assert config["train_time_budget"] is None


def test_plain_stosa_has_no_refinement_keys():
    assert Config("STOSA", "ml-100k")["refine_mechanism"] is None
