"""RecBole's evaluation collector, with the top-k hits found without a users x items matrix.

For every full-ranking metric RecBole computes from top-k lists (Recall, NDCG, Hit,
MRR, Precision, MAP), its ``Collector`` stores ``rec.topk``: for each user of a batch,
whether each of the top k items is a positive, and how many positives the user has.
RecBole builds that from a (B, n_items) integer matrix holding a 1 per positive: it is
allocated, filled, summed over items and gathered at every evaluation batch. On Beauty
(12,102 items, 4,096 users a batch) that matrix took about a third of a validation pass
(benchmarks/README.md). :class:`TopkCollector` computes the same numbers from the
positive pairs alone (P pairs, k ranks: O(P k)), and leaves everything else to RecBole.
"""

import contextlib

import torch
from recbole.evaluator import Collector


def topk_hits(topk_idx, positive_u, positive_i, n_items):
    """RecBole's ``rec.topk`` rows: (B, k) top-k item ids, the P positive (user row, item)
    pairs -> (B, k + 1) int64 (the dtype RecBole's rows end up with): the first k columns
    1 where that rank holds a positive, the last the user's number of distinct positives
    (repeated pairs count once, as RecBole's matrix holds a 1 per pair)."""
    users, k = topk_idx.shape
    pairs = torch.unique(positive_u.long() * n_items + positive_i.long())
    rows, items = pairs // n_items, pairs % n_items
    counts = torch.bincount(rows, minlength=users)
    hits = (topk_idx[rows] == items.unsqueeze(1)).long()  # (P, k)
    found = torch.zeros(users, k, dtype=torch.long, device=topk_idx.device).index_add_(0, rows, hits)
    return torch.cat((found, counts.unsqueeze(1)), dim=1)


@contextlib.contextmanager
def _skipping(register, key):
    """RecBole's register with ``key`` not needed, for the duration."""
    wanted = register.need(key)
    setattr(register, key, False)
    try:
        yield
    finally:
        setattr(register, key, wanted)


class TopkCollector(Collector):
    """``Collector`` whose ``rec.topk`` comes from :func:`topk_hits`; equal to RecBole's."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        if not self.register.need("rec.topk"):
            return super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)
        self.data_struct.update_tensor(
            "rec.topk", topk_hits(topk_idx, positive_u, positive_i, scores_tensor.size(-1)))
        with _skipping(self.register, "rec.topk"):
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
