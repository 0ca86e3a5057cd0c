"""RecBole dataset classes the plugin adds, and the rule that picks one for a config."""

import numpy as np
from recbole.data.dataset import SequentialDataset

from recbole_awrsr.model.targets import train_stride


class AllTargetsSequentialDataset(SequentialDataset):
    """RecBole's sequential dataset whose training split keeps every s-th row of a user.

    RecBole turns every prefix of a user's history into its own training row. A
    row's window (up to n = ``MAX_ITEM_LIST_LENGTH`` items) plus its target holds up
    to n targets, so for ``train_targets: all`` only every s-th row is kept
    (s = ``train_stride``, default n/2 rounded up), counted back from the user's last training
    row, and the model trains the last s positions of each kept row
    (:func:`recbole_awrsr.model.targets.next_item_targets`). Together the kept rows
    cover each training target exactly once; a target sees at least n - s + 1
    earlier items (all of them when its history is shorter), and s = 1 keeps
    RecBole's rows exactly. Validation and test rows are RecBole's, untouched.
    """

    def build(self):
        datasets = super().build()
        train = datasets[0]
        users = train.inter_feat[train.uid_field].numpy()
        # RecBole keeps each user's rows contiguous and in time order: number them
        # from the user's last row backwards and keep every s-th
        rows = np.arange(len(users))
        is_last = np.append(users[1:] != users[:-1], True)
        group_end = np.minimum.accumulate(np.where(is_last, rows, len(users))[::-1])[::-1]
        from_end = group_end - rows
        keep = np.flatnonzero(from_end % train_stride(self.config) == 0)
        datasets[0] = train.copy(train.inter_feat[keep])
        return datasets


def dataset_class(config):
    """The plugin dataset class for ``config``, or None to use RecBole's own choice."""
    if config["train_targets"] == "all":
        return AllTargetsSequentialDataset
    return None
