"""RecBole dataset classes the plugin adds, and the rule that picks one for a config."""

import numpy as np
from recbole.data.dataset import SequentialDataset


class AllTargetsSequentialDataset(SequentialDataset):
    """RecBole's sequential dataset whose training split has a few rows per user, not one per prefix.

    RecBole turns every prefix of a user's history into its own training row. A
    row's window ``item_id_list`` (up to ``MAX_ITEM_LIST_LENGTH`` = n items) plus its
    target holds n targets at once, so for ``train_targets: all`` only every n-th
    row is kept, counted back from the user's last training row: the windows then
    cover each training target exactly once. The most recent targets and every
    target of a user's first n items see exactly RecBole's context; in an older
    window the first targets see fewer than n earlier items (at least one). The
    original SASRec and STOSA code keep the last window only and lose the older
    targets; on ml-100k (about 100 ratings per user, n = 50) that is half of them.
    Validation and test rows are RecBole's, untouched.
    """

    def build(self):
        datasets = super().build()
        train = datasets[0]
        users = train.inter_feat[train.uid_field].numpy()
        # RecBole keeps each user's rows contiguous and in time order: number them
        # from the user's last row backwards and keep every n-th
        rows = np.arange(len(users))
        is_last = np.append(users[1:] != users[:-1], True)
        group_end = np.minimum.accumulate(np.where(is_last, rows, len(users))[::-1])[::-1]
        from_end = group_end - rows
        keep = np.flatnonzero(from_end % self.max_item_list_len == 0)
        datasets[0] = train.copy(train.inter_feat[keep])
        return datasets


def dataset_class(config):
    """The plugin dataset class for ``config``, or None to use RecBole's own choice."""
    if config["train_targets"] == "all":
        return AllTargetsSequentialDataset
    return None
