"""Causality of every backbone under every mechanism and refinement setting: no state
depends on a later item, and a position's state is its prefix's (encode and forward)."""

import pytest
import torch

from conftest import (MAX_LEN, VARIANTS, assert_no_leakage, assert_prefix_consistent, build, random_sequences,
                      variant_id)

# written out, not read from the classes under test
CASES = [("SASRecAWR", mechanism) for mechanism in ("none", "simple", "value", "additive", "smooth")]
CASES += [("STOSAAWR", mechanism) for mechanism in ("none", "simple", "value", "additive", "smooth", "stochastic")]
CASE_IDS = [f"{model}-{mechanism}" for model, mechanism in CASES]

LEAKAGE_SETTINGS = [{"refine_input": "probs"}, {"refine_input": "scores"}] + VARIANTS

# the defaults with shared and per-head matrices; each variant with per-head ones (the wider case)
PREFIX_SETTINGS = [(True, {}), (False, {})] + [(False, variant) for variant in VARIANTS]


@pytest.mark.parametrize("settings", LEAKAGE_SETTINGS, ids=[variant_id(s) for s in LEAKAGE_SETTINGS])
@pytest.mark.parametrize("model_name,mechanism", CASES, ids=CASE_IDS)
def test_no_leakage_from_later_positions(tiny_config_dict, model_name, mechanism, settings):
    _, model, _, _, _ = build(model_name, config_dict=tiny_config_dict,
                              refine_mechanism=mechanism, **settings)
    seqs, _ = random_sequences(6, MAX_LEN, model.n_items, seed=1, min_len=MAX_LEN)
    assert_no_leakage(model, seqs)


@pytest.mark.parametrize("share_heads,settings", PREFIX_SETTINGS,
                         ids=[f"{shared}-{variant_id(v) or 'defaults'}" for shared, v in PREFIX_SETTINGS])
@pytest.mark.parametrize("model_name,mechanism", CASES, ids=CASE_IDS)
def test_prefix_consistency(tiny_config_dict, model_name, mechanism, share_heads, settings):
    _, model, _, _, _ = build(model_name, config_dict=tiny_config_dict,
                              refine_mechanism=mechanism, refine_share_heads=share_heads, **settings)
    seqs, _ = random_sequences(4, MAX_LEN, model.n_items, seed=2, min_len=MAX_LEN)
    assert_prefix_consistent(model, seqs)


class Pooling(torch.nn.Module):
    """A two-stream model of item ids, mean-pooled over the previous positions or (leaky)
    over the whole sequence: for checking the property checks themselves."""

    n_items = 20

    def __init__(self, leaky):
        super().__init__()
        self.leaky = leaky

    def encode(self, seqs):
        x = seqs.float().unsqueeze(-1)
        if self.leaky:
            pooled = x.mean(dim=1, keepdim=True).expand_as(x)
        else:
            pooled = x.cumsum(dim=1) / torch.arange(1, x.shape[1] + 1).view(1, -1, 1)
        return pooled, pooled * 2

    def forward(self, seqs, lengths):
        mean, double = self.encode(seqs)
        index = (lengths - 1).view(-1, 1, 1)
        return mean.gather(1, index).squeeze(1), double.gather(1, index).squeeze(1)


def test_the_property_checks_fail_a_model_that_sees_the_future():
    seqs, _ = random_sequences(3, MAX_LEN, Pooling.n_items, seed=3, min_len=MAX_LEN)
    assert_no_leakage(Pooling(leaky=False), seqs)
    assert_prefix_consistent(Pooling(leaky=False), seqs)
    with pytest.raises(AssertionError, match="before 1 changed"):
        assert_no_leakage(Pooling(leaky=True), seqs)
    with pytest.raises(AssertionError, match="stream 0 at 0"):
        assert_prefix_consistent(Pooling(leaky=True), seqs)
