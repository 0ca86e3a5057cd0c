"""The evaluation collector: the same ``rec.topk`` as RecBole's, without its users x items matrix."""

import pytest
import torch
from recbole.evaluator import Collector

from recbole_awrsr.collector import TopkCollector, topk_hits
from recbole_awrsr.quick_start import build_trainer

from conftest import build


def test_hits_by_hand():
    # 3 users, top 3 of 6 items; user 0 has items 4 and 2 (rank 1 and not in the top 3),
    # user 1 none, user 2 item 5 twice (one positive) at rank 3
    topk_idx = torch.tensor([[4, 1, 0], [2, 3, 5], [0, 1, 5]])
    positive_u = torch.tensor([0, 0, 2, 2])
    positive_i = torch.tensor([4, 2, 5, 5])
    expected = torch.tensor([[1, 0, 0, 2], [0, 0, 0, 0], [0, 0, 1, 1]])
    assert torch.equal(topk_hits(topk_idx, positive_u, positive_i, n_items=6), expected)


def _collect(collector_class, config, batches):
    collector = collector_class(config)
    for scores, positive_u, positive_i in batches:
        collector.eval_batch_collect(scores, None, positive_u, positive_i)
    return collector.get_data_struct()


@pytest.mark.parametrize("extra", [{}, {"metrics": ["Recall", "NDCG", "ItemCoverage", "AveragePopularity"]}])
def test_same_struct_as_recboles_collector(tiny_config_dict, extra):
    config, *_ = build("SASRecAWR", config_dict={**tiny_config_dict, **extra})
    generator = torch.Generator().manual_seed(0)
    batches = []
    for users, items in ((7, 30), (5, 30)):
        # integer scores: many ties, which topk must break the same way in both
        scores = torch.randint(0, 4, (users, items), generator=generator).float()
        positive_u = torch.randint(0, users, (12,), generator=generator)
        positive_i = torch.randint(0, items, (12,), generator=generator)
        batches.append((scores, positive_u, positive_i))
    ours, recboles = _collect(TopkCollector, config, batches), _collect(Collector, config, batches)
    assert set(ours._data_dict) == set(recboles._data_dict)
    for key in recboles._data_dict:
        if isinstance(recboles[key], torch.Tensor):
            assert ours[key].dtype == recboles[key].dtype, key
            assert torch.equal(ours[key], recboles[key]), key
    assert ours["rec.topk"].shape == (12, max(config["topk"]) + 1)


def test_trainer_uses_it_and_metrics_match(tiny_config_dict):
    config, net, train_data, valid_data, _ = build("SASRecAWR", config_dict=tiny_config_dict)
    trainer = build_trainer(config, net)
    assert type(trainer.eval_collector) is TopkCollector
    ours = trainer.evaluate(valid_data, load_best_model=False)
    # plain floats: numpy 2 would print RecBole's np.float64 values as np.float64(...) in the log
    assert ours and all(type(value) is float for value in ours.values())
    trainer.eval_collector = Collector(config)
    assert trainer.evaluate(valid_data, load_best_model=False) == ours
