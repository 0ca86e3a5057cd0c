"""The models on a CUDA GPU: the CPU's numbers with the same weights, and training there.

Skipped where no CUDA device is visible (CI and the development machine have none). A
session lent a GPU runs ``pytest tests/test_cuda.py`` there (benchmarks/README.md, "On a
GPU"). On the GPU ``length_groups`` defaults to one group, on the CPU to four, so the
score comparisons also cover the two groupings.
"""

import copy

import pytest
import torch

from conftest import build

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CASES = [("SASRecAWR", mechanism) for mechanism in ("none", "simple", "value", "additive")]
CASES += [("STOSA", None), ("STOSAAWR", "simple"), ("STOSAAWR", "stochastic")]


def on_both(tiny_config_dict, model_name, mechanism, **overrides):
    """The model built on the CPU, its copy on the GPU (both in eval mode), and its data."""
    if mechanism is not None:
        overrides["refine_mechanism"] = mechanism
    _, cpu_model, train_data, valid_data, _ = build(model_name, config_dict=tiny_config_dict,
                                                    use_gpu=False, **overrides)
    gpu_model = copy.deepcopy(cpu_model).cuda()
    return cpu_model.eval(), gpu_model.eval(), train_data, valid_data


@pytest.mark.parametrize("targets", ["last", "all"])
@pytest.mark.parametrize("model_name, mechanism", CASES)
def test_full_ranking_scores_are_the_cpus(tiny_config_dict, model_name, mechanism, targets):
    cpu_model, gpu_model, _, valid_data = on_both(tiny_config_dict, model_name, mechanism,
                                                  train_targets=targets)
    batch = next(iter(valid_data))[0]
    with torch.no_grad():
        cpu_scores = cpu_model.full_sort_predict(batch)
        gpu_scores = gpu_model.full_sort_predict(batch.to("cuda")).cpu()
    assert gpu_scores.shape == cpu_scores.shape == (len(batch), cpu_model.n_items)
    assert torch.allclose(gpu_scores, cpu_scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("targets", ["last", "all"])
@pytest.mark.parametrize("mechanism", ["none", "simple", "value", "additive"])
def test_sasrec_awr_training_loss_is_the_cpus(tiny_config_dict, mechanism, targets):
    # CE needs no sampled negatives, so CPU and GPU see the same targets
    cpu_model, gpu_model, train_data, _ = on_both(tiny_config_dict, "SASRecAWR", mechanism,
                                                  train_targets=targets)
    batch = next(iter(train_data))
    with torch.no_grad():
        cpu_loss = cpu_model.calculate_loss(batch)
        gpu_loss = gpu_model.calculate_loss(batch.to("cuda")).cpu()
    assert torch.allclose(gpu_loss, cpu_loss, atol=1e-5, rtol=1e-5)


def test_none_is_recboles_sasrec_on_the_gpu(tiny_config_dict):
    _, stock, _, valid_data = on_both(tiny_config_dict, "SASRec", None,
                                              train_targets="last")
    _, ours, _, _ = on_both(tiny_config_dict, "SASRecAWR", "none", train_targets="last")
    ours.load_state_dict(stock.state_dict())
    batch = next(iter(valid_data))[0].to("cuda")
    with torch.no_grad():
        assert torch.allclose(ours.full_sort_predict(batch), stock.full_sort_predict(batch),
                              atol=1e-5)


@pytest.mark.parametrize("model_name, mechanism", CASES)
def test_training_steps_on_the_gpu_lower_the_loss(tiny_config_dict, model_name, mechanism):
    _, model, train_data, _ = on_both(tiny_config_dict, model_name, mechanism,
                                      hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    model.train()
    batch = next(iter(train_data)).to("cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        torch.manual_seed(0)  # the same sampled negatives (STOSA) at every step
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert all(p.is_cuda for p in model.parameters())
    assert losses[-1] < 0.8 * losses[0]
