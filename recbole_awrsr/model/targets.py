"""Training with a target at every position (``train_targets: all``).

RecBole's sequential data gives, per training row, a window of items
``item_seq`` (B, n), its length (B,) and the next item ``pos_items`` (B,).
With ``train_targets: all`` the plugin's dataset keeps one such row per user (the
user's last training window); the target of position k is then the item at k+1,
and the target of the last real position is ``pos_items``. Because every model
here is prefix-consistent, the output at position k is exactly the output RecBole
would compute for the prefix ending at k, so the objective is unchanged: only the
number of forward passes shrinks.
"""

import torch

from recbole_awrsr.errors import ConfigurationError

TRAIN_TARGETS = ("last", "all")


def next_item_targets(item_seq, item_seq_len, pos_items):
    """Target item of every position: (B, n), (B,), (B,) -> (B, n), 0 at padding."""
    targets = torch.zeros_like(item_seq)
    targets[:, :-1] = item_seq[:, 1:]
    rows = torch.arange(item_seq.size(0), device=item_seq.device)
    targets[rows, item_seq_len - 1] = pos_items
    return targets


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
    """Raise ValueError, with the fix, for an unknown ``train_targets`` value."""
    value = config["train_targets"]
    if value not in TRAIN_TARGETS:
        raise ConfigurationError(
            f"Unknown train_targets '{value}' for model {config['model']}: use 'last' "
            f"(RecBole's one target per prefix) or 'all' (a target at every position)."
        )
