"""RecBole dataset classes the plugin adds, and the rule that picks one for a config."""

import numpy as np
from recbole.data.dataset import SequentialDataset


class AllTargetsSequentialDataset(SequentialDataset):
    """RecBole's sequential dataset whose training split has one row per user.

    RecBole turns every prefix of a user's history into its own training row.
    For ``train_targets: all`` only each user's *last* training row is kept: its
    window ``item_id_list`` (the last ``MAX_ITEM_LIST_LENGTH`` training items before
    the target) and its target together hold every earlier target of that window,
    which the model trains on at once. Validation and test rows are RecBole's, untouched.
    A history longer than the window keeps its most recent window only (as the
    original SASRec and STOSA code do); older targets are not trained on.
    """

    def build(self):
        datasets = super().build()
        train = datasets[0]
        users = train.inter_feat[train.uid_field].numpy()
        # rows of a user keep RecBole's time order, so the user's last row is the
        # longest (most recent) window; find it as the first hit in reverse
        reversed_first = np.unique(users[::-1], return_index=True)[1]
        last_rows = np.sort(len(users) - 1 - reversed_first)
        datasets[0] = train.copy(train.inter_feat[last_rows])
        return datasets


def dataset_class(config):
    """The plugin dataset class for ``config``, or None to use RecBole's own choice."""
    if config["train_targets"] == "all":
        return AllTargetsSequentialDataset
    return None
