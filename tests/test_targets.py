"""train_targets: all: one row per user, the same targets and the same objective as RecBole's."""

from collections import Counter

import pytest
import torch

from conftest import build
from recbole_awrsr.model.targets import next_item_targets, sample_negatives

LONG = 20  # window longer than any tiny history: nothing is cut off


def history_by_user(data_path, dataset):
    """Chronological (remapped) item ids of each user, read from the atomic file itself."""
    lines = (data_path / "tiny" / "tiny.inter").read_text().splitlines()[1:]
    rows = sorted((int(u), float(t), i) for u, i, _, t in (line.split("\t") for line in lines))
    out = {}
    for user, _, item in rows:
        uid = dataset.token2id(dataset.uid_field, str(user))
        out.setdefault(int(uid), []).append(int(dataset.token2id(dataset.iid_field, item)))
    return out


def rows_by_user(loader, field):
    data = loader.dataset.inter_feat
    return {u.item(): i for i, u in enumerate(data[field])}


@pytest.fixture
def both(tiny_config_dict):
    cfg = {**tiny_config_dict, "MAX_ITEM_LIST_LENGTH": LONG, "train_stride": LONG,
           "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
    last = build("SASRecAWR", config_dict=cfg, train_targets="last")
    every = build("SASRecAWR", config_dict=cfg, train_targets="all")
    return last, every


def targets_of(model, data, uid):
    """Counter of (user, target item) over every trained position of every row."""
    targets = next_item_targets(data[model.ITEM_SEQ], data[model.ITEM_SEQ_LEN], data[model.POS_ITEM_ID],
                                model.train_stride)
    out = Counter()
    for u, row in zip(data[uid].tolist(), targets.tolist()):
        out.update((u, item) for item in row if item)
    return out


@pytest.mark.parametrize("stride", [1, 2, 3, 4, None])
def test_kept_rows_cover_every_target_once(tiny_config_dict, stride):
    window = 4  # tiny users have 4-12 training targets: several windows each
    cfg = {**tiny_config_dict, "MAX_ITEM_LIST_LENGTH": window, "train_stride": stride}
    _, _, last_train, _, _ = build("SASRecAWR", config_dict=cfg, train_targets="last")
    config, model, all_train, _, _ = build("SASRecAWR", config_dict=cfg, train_targets="all")
    step = stride or window // 2
    uid = config["USER_ID_FIELD"]
    last_data, all_data = last_train.dataset.inter_feat, all_train.dataset.inter_feat
    assert targets_of(model, all_data, uid) == Counter(
        zip(last_data[uid].tolist(), last_data[model.POS_ITEM_ID].tolist()))
    rows_per_user = Counter(all_data[uid].tolist())
    for user, n_targets in Counter(last_data[uid].tolist()).items():
        assert rows_per_user[user] == -(-n_targets // step)  # ceil
    # every kept row is one of RecBole's rows, unchanged (its window and target)
    recbole_rows = {(u, tuple(seq), t) for u, seq, t in zip(
        last_data[uid].tolist(), last_data[model.ITEM_SEQ].tolist(), last_data[model.POS_ITEM_ID].tolist())}
    for u, seq, t in zip(all_data[uid].tolist(), all_data[model.ITEM_SEQ].tolist(),
                         all_data[model.POS_ITEM_ID].tolist()):
        assert (u, tuple(seq), t) in recbole_rows
    # each trained target sees at least window - stride + 1 items, or its whole history
    lengths = all_data[model.ITEM_SEQ_LEN]
    targets = next_item_targets(all_data[model.ITEM_SEQ], lengths, all_data[model.POS_ITEM_ID], model.train_stride)
    positions = torch.arange(window).expand_as(targets)
    context = positions + 1  # items up to and including position k
    trained = targets > 0
    full_history = lengths.unsqueeze(1) < window
    assert torch.all((context >= window - step + 1) | full_history | ~trained)


def test_stride_one_is_recbole_training_exactly(tiny_config_dict):
    cfg = {**tiny_config_dict, "MAX_ITEM_LIST_LENGTH": 4, "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
    _, _, last_train, _, _ = build("SASRecAWR", config_dict=cfg, train_targets="last")
    _, model, all_train, _, _ = build("SASRecAWR", config_dict=cfg, train_targets="all", train_stride=1)
    last_data, all_data = last_train.dataset.inter_feat, all_train.dataset.inter_feat
    assert len(last_data) == len(all_data)
    model.eval()
    with torch.no_grad():
        loss_all = model.calculate_loss(all_data)
        model.train_targets = "last"
        loss_last = model.calculate_loss(last_data)
    assert torch.allclose(loss_all, loss_last, atol=1e-5)


@pytest.mark.parametrize("stride", [0, 9, 2.5, "half", True])
def test_bad_stride_is_refused(stride):
    from recbole_awrsr import Config
    from recbole_awrsr.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="train_stride must be an integer from 1"):
        Config(model="SASRecAWR", dataset="ml-100k", config_dict={"MAX_ITEM_LIST_LENGTH": 8,
                                                                  "train_stride": stride})


def test_one_row_per_user_and_exactly_the_training_targets(both):
    (_, _, last_train, _, _), (config, model, all_train, all_valid, all_test) = both
    data = all_train.dataset.inter_feat
    users = data[config["USER_ID_FIELD"]]
    assert len(users) == len(set(users.tolist()))
    targets = next_item_targets(data[model.ITEM_SEQ], data[model.ITEM_SEQ_LEN], data[model.POS_ITEM_ID])
    ours = Counter()
    for u, row in zip(users.tolist(), targets.tolist()):
        ours.update((u, item) for item in row if item)
    last_data = last_train.dataset.inter_feat
    recbole = Counter(zip(last_data[config["USER_ID_FIELD"]].tolist(), last_data[model.POS_ITEM_ID].tolist()))
    assert ours == recbole


def test_window_plus_valid_and_test_is_the_whole_history(both, tiny_root):
    _, (config, model, all_train, all_valid, all_test) = both
    full = history_by_user(tiny_root, all_train.dataset)
    data = all_train.dataset.inter_feat
    valid = all_valid.dataset.inter_feat
    test = all_test.dataset.inter_feat
    valid_rows = rows_by_user(all_valid, config["USER_ID_FIELD"])
    test_rows = rows_by_user(all_test, config["USER_ID_FIELD"])
    checked = 0
    for i, user in enumerate(data[config["USER_ID_FIELD"]].tolist()):
        length = data[model.ITEM_SEQ_LEN][i].item()
        window = data[model.ITEM_SEQ][i, :length].tolist() + [data[model.POS_ITEM_ID][i].item()]
        expected = window + [valid[model.POS_ITEM_ID][valid_rows[user]].item(),
                             test[model.POS_ITEM_ID][test_rows[user]].item()]
        assert expected == full[user]
        # the first item is input only; valid and test items are never targets
        row_targets = next_item_targets(data[model.ITEM_SEQ][i:i + 1], data[model.ITEM_SEQ_LEN][i:i + 1],
                                        data[model.POS_ITEM_ID][i:i + 1], model.train_stride)[0, :length].tolist()
        assert row_targets == window[1:]
        checked += 1
    assert checked > 10


def test_all_loss_equals_mean_of_prefix_losses(both):
    (_, _, last_train, _, _), (config, model, all_train, _, _) = both
    model.eval()
    all_data = all_train.dataset.inter_feat
    last_data = last_train.dataset.inter_feat
    uid = config["USER_ID_FIELD"]
    for i in range(3):
        user = all_data[uid][i].item()
        one = all_data[[i]]
        prefixes = last_data[torch.nonzero(last_data[uid] == user).flatten().numpy()]
        with torch.no_grad():
            model.train_targets = "all"
            loss_all = model.calculate_loss(one)
            model.train_targets = "last"
            loss_last = model.calculate_loss(prefixes)
        assert len(prefixes) == one[model.ITEM_SEQ_LEN].item()
        assert torch.allclose(loss_all, loss_last, atol=1e-5), (loss_all, loss_last)


def test_next_item_targets_by_hand():
    seq = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]])
    targets = next_item_targets(seq, torch.tensor([3, 1]), torch.tensor([8, 4]))
    assert targets.tolist() == [[6, 7, 8, 0], [4, 0, 0, 0]]
    strided = next_item_targets(seq, torch.tensor([3, 1]), torch.tensor([8, 4]), stride=2)
    assert strided.tolist() == [[0, 7, 8, 0], [4, 0, 0, 0]]


def test_negatives_avoid_the_target_and_cover_the_others():
    targets = torch.full((2000, 3), 3)
    targets[:, 2] = 0
    gen = torch.Generator().manual_seed(0)
    negatives = sample_negatives(targets, n_items=6, generator=gen)
    assert torch.all(negatives[:, 2] == 0)
    drawn = negatives[:, :2].flatten()
    assert not torch.any(drawn == 3)
    counts = torch.bincount(drawn, minlength=6)
    assert counts[0] == 0 and counts[3] == 0
    # uniform over the four other items: each near 1000 of 4000
    assert torch.all((counts[[1, 2, 4, 5]] - 1000).abs() < 150), counts


def test_all_bpr_loss_by_hand(tiny_config_dict):
    # BPR with train_targets: all scores every trained position against one sampled
    # negative: -log sigmoid(s(pos) - s(neg)), averaged over the targets of the batch
    config, model, train_data, _, _ = build(
        "SASRecAWR", config_dict=tiny_config_dict, train_targets="all", loss_type="BPR")
    model.eval()  # no dropout: the negatives are the only random draw
    batch = next(iter(train_data))
    torch.manual_seed(7)
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        torch.manual_seed(7)
        targets = next_item_targets(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN],
                                    batch[model.POS_ITEM_ID], model.train_stride)
        negatives = sample_negatives(targets, model.n_items)
        real = targets > 0
        hidden = model.encode(batch[model.ITEM_SEQ])[0][real]  # (T, d)
        items = model.item_embedding.weight
        pos = (hidden * items[targets[real]]).sum(-1)
        neg = (hidden * items[negatives[real]]).sum(-1)
        expected = -torch.log(torch.sigmoid(pos - neg)).mean()
    assert real.sum() > len(batch)  # several targets a row: the `all` path
    assert (negatives[real] != targets[real]).all()
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)
