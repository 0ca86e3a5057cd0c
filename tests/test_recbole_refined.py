"""Refinement inside RecBole's transformer models: none is RecBole's model, mechanisms add
exactly their matrices, causal masks keep no leakage, BERT4Rec never attends to padding."""

from pathlib import Path

import pytest
import torch
from recbole.model.layers import TransformerLayer

from conftest import MAX_LEN, TINY_ITEMS, build, random_sequences, write_tiny_dataset
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.recbole_refined import REFINED_RECBOLE_MODELS, encoder_length
from recbole_awrsr.model.refinement import MECHANISMS, build_refinement

#: refined model -> RecBole's model it refines
BASES = {name: name[: -len("AWR")] for name in REFINED_RECBOLE_MODELS}
#: models whose attention is causal (BERT4Rec's is bidirectional)
CAUSAL = [name for name in REFINED_RECBOLE_MODELS if name != "BERT4RecAWR"]


@pytest.fixture(scope="module")
def feature_root(tmp_path_factory):
    """The tiny dataset plus a ``tiny.item`` with a ``class`` feature (for SASRecF and FDSA)."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("features"))
    lines = ["item_id:token\tclass:token_seq"]
    lines += [f"{item}\tc{item % 3} c{item % 5}" for item in range(1, TINY_ITEMS + 1)]
    (Path(root) / "tiny" / "tiny.item").write_text("\n".join(lines) + "\n")
    return root


def settings(name, tiny_config_dict, feature_root, **more):
    config = {**tiny_config_dict, "data_path": str(feature_root), "epochs": 1,
              "hidden_dropout_prob": 0.1, "attn_dropout_prob": 0.1, **more}
    if name.startswith(("SASRecF", "FDSA")):
        config.update({"load_col": {"inter": ["user_id", "item_id", "timestamp"],
                                    "item": ["item_id", "class"]},
                       "selected_features": ["class"]})
    if name.startswith("CORE"):
        config["embedding_size"] = config["hidden_size"]
    if name.startswith("SASRecCPR"):
        config["reranker_CAN_NUM"] = "20"  # its default, 100 candidates, exceeds the tiny item set
    return config


def pair(name, tiny_config_dict, feature_root, mechanism="none", **more):
    """RecBole's model and the refined one, built from the same seed, and their data."""
    config = settings(name, tiny_config_dict, feature_root, **more)
    _, base, train_data, valid_data, _ = build(BASES[name], config_dict=config)
    _, ours, _, _, _ = build(name, config_dict={**config, "refine_mechanism": mechanism})
    return base, ours, train_data, valid_data


@pytest.mark.parametrize("name", list(REFINED_RECBOLE_MODELS))
def test_none_is_recboles_model(tiny_config_dict, feature_root, name):
    base, ours, train_data, valid_data = pair(name, tiny_config_dict, feature_root)
    base_state, our_state = base.state_dict(), ours.state_dict()
    assert list(base_state) == list(our_state)  # same names, same order
    for key, value in base_state.items():
        assert torch.equal(value, our_state[key]), key  # same seed, same weights
    batch = next(iter(valid_data))[0]
    base.eval(), ours.eval()
    with torch.no_grad():
        assert torch.allclose(base.full_sort_predict(batch), ours.full_sort_predict(batch), atol=1e-5)
    train_batch = next(iter(train_data))
    base.train(), ours.train()
    torch.manual_seed(11)
    base_loss = base.calculate_loss(train_batch)
    torch.manual_seed(11)
    our_loss = ours.calculate_loss(train_batch)
    assert torch.allclose(base_loss, our_loss, atol=1e-5)  # same dropout draws too


@pytest.mark.parametrize("name", list(REFINED_RECBOLE_MODELS))
@pytest.mark.parametrize("mechanism", ["simple", "value", "additive", "smooth"])
def test_each_mechanism_adds_exactly_its_matrices(tiny_config_dict, feature_root, name, mechanism):
    base, ours, _, _ = pair(name, tiny_config_dict, feature_root, mechanism)
    layers = [module_name for module_name, module in ours.named_modules()
              if isinstance(module, TransformerLayer)]
    added = set(ours.state_dict()) - set(base.state_dict())
    expected = {f"{layer}.multi_head_attention.refinement.{matrix}" for layer in layers
                for matrix in MECHANISMS[mechanism].matrix_names}
    assert added == expected and not set(base.state_dict()) - set(ours.state_dict())
    n = encoder_length(ours)
    assert n >= MAX_LEN
    for key in added:
        assert ours.state_dict()[key].shape == (n, n)
    assert len(ours.attention_layers()) == len(layers)


def attention_inputs(model, seqs, hidden_size, bidirectional=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(seqs.size(0), seqs.size(1), hidden_size, generator=gen)
    return hidden, model.get_attention_mask(seqs, bidirectional=bidirectional)


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("mechanism", ["simple", "value", "additive", "smooth"])
def test_causal_models_keep_no_leakage(tiny_config_dict, feature_root, name, mechanism):
    """With the model's own causal mask, changing later positions never changes earlier outputs."""
    _, ours, _, _ = pair(name, tiny_config_dict, feature_root, mechanism)
    ours.eval()
    seqs = torch.randint(1, TINY_ITEMS, (4, MAX_LEN))
    for attention in ours.attention_layers():
        hidden, mask = attention_inputs(ours, seqs, attention.all_head_size)
        with torch.no_grad():
            out = attention(hidden, mask)
            changed = hidden.clone()
            changed[:, 5:] += 3.0
            out_changed = attention(changed, mask)
        assert torch.allclose(out[:, :5], out_changed[:, :5], atol=1e-6)
        assert not torch.allclose(out[:, 5:], out_changed[:, 5:], atol=1e-3)


@pytest.mark.parametrize("mechanism", ["simple", "value", "additive", "smooth"])
def test_bert4rec_never_attends_to_padding(tiny_config_dict, feature_root, mechanism):
    _, ours, _, _ = pair("BERT4RecAWR", tiny_config_dict, feature_root, mechanism)
    ours.eval()
    seqs, lengths = random_sequences(6, MAX_LEN, TINY_ITEMS, seed=2, min_len=2)
    for attention in ours.attention_layers():
        hidden, mask = attention_inputs(ours, seqs, attention.all_head_size, bidirectional=True)
        attention.keep_weights = True
        with torch.no_grad():
            out = attention(hidden, mask)
            changed = hidden.clone()
            padding = seqs == 0
            changed[padding] += 5.0
            out_changed = attention(changed, mask)
        attention.keep_weights = False
        padding_keys = padding[:, None, None, :].expand_as(attention.refined_weights)
        assert attention.refined_weights[padding_keys].abs().max() < 1e-6
        real = ~padding
        assert torch.allclose(out[real], out_changed[real], atol=1e-6)
        # bidirectional: an early position does see a later real item
        later = hidden.clone()
        later[0, lengths[0] - 1] += 3.0
        with torch.no_grad():
            assert not torch.allclose(attention(later, mask)[0, 0], out[0, 0], atol=1e-4)


@pytest.mark.parametrize("name", list(REFINED_RECBOLE_MODELS))
def test_short_training_lowers_the_loss(tiny_config_dict, feature_root, name):
    _, ours, train_data, _ = pair(name, tiny_config_dict, feature_root, "simple")
    batch = next(iter(train_data))
    optimizer = torch.optim.Adam(ours.parameters(), lr=3e-3)
    ours.train()
    losses = []
    for _ in range(30):
        torch.manual_seed(0)  # the same dropout masks each step: only the weights change
        loss = ours.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    refinement = ours.attention_layers()[0].refinement
    assert refinement.w_query.grad is not None and refinement.w_query.grad.abs().sum() > 0


def test_core_in_average_mode_is_refused(tiny_config_dict, feature_root):
    with pytest.raises(ConfigurationError, match="dnn_type: trm"):
        build("COREAWR", config_dict={**settings("COREAWR", tiny_config_dict, feature_root),
                                      "dnn_type": "ave"})


def test_stochastic_is_refused_for_dot_product_models(tiny_config_dict, feature_root):
    with pytest.raises(ConfigurationError, match="stochastic"):
        build("BERT4RecAWR", config_dict={**settings("BERT4RecAWR", tiny_config_dict, feature_root),
                                          "refine_mechanism": "stochastic"})


def test_matrices_follow_the_encoder_length(tiny_config_dict):
    config = {"refine_mechanism": "simple", "refine_share_heads": True, "refine_input": "probs",
              "refine_init": "normal", "refine_temperature": "fixed", "MAX_ITEM_LIST_LENGTH": 5}
    assert build_refinement(config, 2).w_query.shape == (5, 5)
    assert build_refinement(config, 2, n=6).w_query.shape == (6, 6)


@pytest.mark.parametrize("name", ["SASRecFAWR", "SASRecF", "FDSAAWR", "FDSA", "BERT4RecAWR"])
def test_a_saved_run_tests_its_best_checkpoint_and_reloads(tiny_config_dict, feature_root, name, tmp_path):
    """SASRecF and FDSA name their feature layer (a submodule that keeps a reference to the
    whole dataset) as an ``other_parameter``: RecBole pickled it into the checkpoint, which
    the safe loader refused, so a saved run could not test its best epoch. The plugin's
    checkpoint leaves the model's own submodules out (their weights are in the state dict)."""
    from recbole_awrsr.compat import load_checkpoint
    from recbole_awrsr.quick_start import load_data_and_model, run
    from recbole_awrsr.trainer import saved_other_parameters

    base = name[: -len("AWR")] if name.endswith("AWR") else name
    config = settings(base + "AWR", tiny_config_dict, feature_root, checkpoint_dir=str(tmp_path))
    result, built = run(name, "tiny", config_dict=config, saved=True)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    checkpoint = load_checkpoint(built.trainer.saved_model_file)
    if base in ("SASRecF", "FDSA"):  # the case this is about
        assert set(built.model.other_parameter()) == {"feature_embed_layer"}
    assert not checkpoint["other_parameter"]  # None, or RecBole's own empty dict (BERT4Rec)
    assert not saved_other_parameters(built.model)
    _, model, _, _, _, test_data = load_data_and_model(built.trainer.saved_model_file)
    for key, value in built.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
