"""Training with a target at every position (``train_targets: all``).

RecBole's sequential data gives, per training row, a window of items
``item_seq`` (B, n), its length (B,) and the next item ``pos_items`` (B,).
With ``train_targets: all`` the plugin's dataset keeps every s-th of a user's rows
(s = ``train_stride``, counted back from the last; see
:class:`recbole_awrsr.data.dataset.AllTargetsSequentialDataset`); in a row, the
target of position k is the item at k+1 and the target of the last real position
is ``pos_items``, and the row trains its last s real positions (the earlier ones
belong to an earlier row). Every model here is prefix-consistent, so the output
at a position is exactly what RecBole computes for the prefix ending there in the
same window: with s = 1 this *is* RecBole's training; a larger s trains s targets
per forward pass, each with a context of at least n - s + 1 items (or its whole
history, when shorter).
"""

import torch

from recbole_awrsr.errors import ConfigurationError, is_number

TRAIN_TARGETS = ("last", "all")


def next_item_targets(item_seq, item_seq_len, pos_items, stride=None):
    """Target item of every trained position: (B, n), (B,), (B,) -> (B, n), 0 elsewhere.

    With ``stride`` s, only the last s real positions of each row keep a target.
    """
    targets = torch.zeros_like(item_seq)
    targets[:, :-1] = item_seq[:, 1:]
    rows = torch.arange(item_seq.size(0), device=item_seq.device)
    targets[rows, item_seq_len - 1] = pos_items
    if stride is not None:
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        targets = targets.masked_fill(positions < (item_seq_len - stride).unsqueeze(1), 0)
    return targets


def train_stride(config):
    """The stride s of ``train_targets: all``: ``train_stride``, or half the window, rounded up.

    Half the window (every target sees at least n/2 earlier items) trained better
    than whole windows on ml-100k at twice their cost, still a 25th of RecBole's
    rows at n = 50 (benchmarks/README.md).
    """
    return config["train_stride"] or -(-config["MAX_ITEM_LIST_LENGTH"] // 2)


def sample_negatives(targets, n_items, generator=None):
    """One uniform negative item per target, never equal to it: (B, n) -> (B, n).

    Items are 1..n_items-1 (0 is padding). A draw from the n_items-2 ids
    1..n_items-2 is shifted up by one where it is >= the target, which maps it
    uniformly onto the items other than the target. Entries where ``targets`` is 0
    (padding) are set to 0.
    """
    draws = torch.randint(1, n_items - 1, targets.shape, device=targets.device, generator=generator)
    draws = draws + (draws >= targets).long()
    return draws.masked_fill(targets == 0, 0)


def check_train_targets(config):
    """Raise ConfigurationError, with the fix, for bad ``train_targets`` / ``train_stride`` values."""
    value = config["train_targets"]
    if value not in TRAIN_TARGETS:
        raise ConfigurationError(
            f"Unknown train_targets '{value}' for model {config['model']}: use 'last' "
            f"(RecBole's one target per prefix) or 'all' (a target at every position)."
        )
    stride, length = config["train_stride"], config["MAX_ITEM_LIST_LENGTH"]
    if stride is not None and (not is_number(stride) or not 1 <= stride <= length):
        raise ConfigurationError(
            f"train_stride must be an integer from 1 to MAX_ITEM_LIST_LENGTH ({length}), "
            f"got {stride!r}: 1 trains exactly RecBole's rows, {length} one row per window."
        )
