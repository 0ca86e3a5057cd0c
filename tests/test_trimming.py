"""Skipping padding: groups of rows cut to their longest row give the uncut model's outputs."""

import pytest
import torch

from conftest import MAX_LEN, VARIANTS, build, random_sequences, variant_id
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.model.trimming import auto_groups, length_groups, reassemble

MECHANISMS = ["none", "simple", "value", "additive", "smooth"]


def test_groups_cover_each_row_once_with_their_longest_length():
    lengths = torch.tensor([3, 8, 1, 5, 8, 2, 7, 4, 6])
    groups = length_groups(lengths, 3)
    assert len(groups) == 3
    rows = torch.cat([r for r, _ in groups])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert [length for _, length in groups] == [3, 6, 8]  # sorted by length, 3 rows each
    for group, length in groups:
        assert int(lengths[group].max()) == length
    assert length_groups(lengths, 1) == [(None, 8)]


def test_reassemble_restores_batch_order_and_pads():
    lengths = torch.tensor([4, 1, 3, 2])
    groups = length_groups(lengths, 2)
    # each part: row index as the value, (b, L, 1)
    parts = [r.float().view(-1, 1, 1).expand(-1, length, 1) for r, length in groups]
    whole = reassemble(parts, groups, width=5)
    assert whole.shape == (4, 5, 1)
    for row in range(4):
        real = {0: 4, 1: 2, 2: 4, 3: 2}[row]  # the longest length in the row's group
        assert torch.all(whole[row, :real, 0] == row)
        assert torch.all(whole[row, real:, 0] == 0)


def uncut(model, seqs):
    """The encoder over all n positions, as RecBole's SASRec runs it: (B, n, d)."""
    hidden, mask = model.embed(seqs)
    return model.trm_encoder(hidden, mask, output_all_encoded_layers=False)[-1]


# the defaults uncut and in three groups; each variant in three groups (each cut to its longest row)
CUT_SETTINGS = [(1, {}), (3, {})] + [(3, variant) for variant in VARIANTS]


@pytest.mark.parametrize("groups,settings", CUT_SETTINGS,
                         ids=[f"{groups}-{variant_id(v) or 'defaults'}" for groups, v in CUT_SETTINGS])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_cut_groups_equal_the_uncut_encoder_at_real_positions(tiny_config_dict, mechanism, groups,
                                                              settings):
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict,
                              refine_mechanism=mechanism, length_groups=groups, **settings)
    with torch.no_grad():  # away from the near-uniform init, so the check is sharp
        for name, p in model.named_parameters():
            if name.startswith("trm_encoder") and "refinement" in name:
                p.add_(0.3 * torch.randn_like(p))
    model.eval()
    seqs, lengths = random_sequences(9, MAX_LEN - 2, model.n_items, seed=4, min_len=1)
    seqs = torch.nn.functional.pad(seqs, (0, 2))  # no row uses the last two positions
    with torch.no_grad():
        reference = uncut(model, seqs)
        (encoded,) = model.encode(seqs)
        read_out = model(seqs, lengths)
    for row, length in enumerate(lengths.tolist()):
        assert torch.allclose(encoded[row, :length], reference[row, :length], atol=1e-5)
        assert torch.allclose(read_out[row], reference[row, length - 1], atol=1e-5)


@pytest.mark.parametrize("mechanism", ["none", "value"])
def test_all_targets_loss_is_the_same_cut_or_not(tiny_config_dict, mechanism):
    losses = []
    for groups in (1, 4):
        _, model, train_data, _, _ = build("SASRecAWR", config_dict=tiny_config_dict,
                                           refine_mechanism=mechanism, train_targets="all",
                                           length_groups=groups)
        model.eval()
        batch = next(iter(train_data))
        with torch.no_grad():
            losses.append(model.calculate_loss(batch))
    assert torch.allclose(losses[0], losses[1], atol=1e-6)


def test_unset_length_groups_means_four_on_a_cpu_and_one_on_a_gpu(tiny_config_dict):
    assert auto_groups(None, "cpu") == 4
    assert auto_groups(None, torch.device("cuda", 0)) == 1  # no GPU needed: only the type is read
    assert auto_groups(3, "cuda") == 3 and auto_groups(1, "cpu") == 1  # a set value stays
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict, length_groups=None)
    assert model.length_groups is None
    lengths = torch.arange(1, 17)
    assert [length for _, length in model._groups(lengths)] == [4, 8, 12, 16]


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "four"])
def test_bad_length_groups_fail_before_training(tiny_config_dict, value):
    from recbole_awrsr import Config

    with pytest.raises(ConfigurationError, match="length_groups"):
        Config(model="SASRecAWR", dataset="tiny",
               config_dict={**tiny_config_dict, "length_groups": value})


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_last_layer_from_the_first_read_position_keeps_the_read_outputs(tiny_config_dict,
                                                                        mechanism):
    _, model, _, _, _ = build("SASRecAWR", config_dict=tiny_config_dict,
                              refine_mechanism=mechanism, length_groups=2)
    model.eval()
    seqs, lengths = random_sequences(8, MAX_LEN, model.n_items, seed=6, min_len=2)
    read_from = lengths - 3  # the last three positions of each row, as with train_stride 3
    with torch.no_grad():
        (full,) = model.encode(seqs)
        (partial,) = model.encode(seqs, read_from)
    for row, (first, length) in enumerate(zip(read_from.tolist(), lengths.tolist())):
        first = max(first, 0)
        assert torch.allclose(partial[row, first:length], full[row, first:length], atol=1e-5)
    # work is really skipped: a group starts at its rows' smallest first read position,
    # so at least the rows that set it have no zeros there, and some others do
    skipped = [bool((partial[row, :f] == 0).all()) for row, f in enumerate(read_from.tolist())
               if f > 0]
    assert any(skipped)


@pytest.mark.parametrize("mechanism", ["none", "additive"])
def test_all_targets_loss_with_a_short_stride_is_the_full_encoders(tiny_config_dict, mechanism):
    from recbole_awrsr.model.targets import next_item_targets

    _, model, train_data, _, _ = build("SASRecAWR", config_dict=tiny_config_dict,
                                       refine_mechanism=mechanism, train_targets="all",
                                       train_stride=2)
    model.eval()
    batch = next(iter(train_data))
    seqs, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    assert (lengths > 2).any()  # some rows skip positions in the last layer
    targets = next_item_targets(seqs, lengths, batch[model.POS_ITEM_ID], 2)
    real = targets > 0
    with torch.no_grad():
        logits = model.encode(seqs)[0][real] @ model.item_embedding.weight.t()  # every position
        expected = torch.nn.functional.cross_entropy(logits, targets[real])
        assert torch.allclose(model.calculate_loss(batch), expected, atol=1e-6)
