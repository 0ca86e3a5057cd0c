"""Analysis: exported attention is what the model used; the four commands write and refuse."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import MAX_LEN, build, random_sequences
from recbole_awrsr.analysis.__main__ import main
from recbole_awrsr.analysis.attention import export_attention, user_sequence
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.history import history_path
from recbole_awrsr.model.sharpness import allowed_keys, row_sharpness
from recbole_awrsr.model.wasserstein import positive_variance

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sharpen(net, seed=0):
    """Larger random weights than the init, so that attention is far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "embedding" not in name and p.dim() >= 2:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)


def merge(x):
    """(B, h, n, d_h) -> (B, n, d)."""
    batch, heads, length, size = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * size)


def heads(x, h):
    """(B, n, d) -> (B, h, n, d_h)."""
    batch, length, d = x.shape
    return x.view(batch, length, h, d // h).transpose(1, 2)


SASREC_CASES = [("SASRecAWR", m) for m in ("none", "simple", "value", "additive")] + [("SASRec", None)]


@pytest.mark.parametrize("model,mechanism", SASREC_CASES)
def test_exported_sasrec_attention_is_what_the_model_used(tiny_config_dict, model, mechanism):
    extra = {"refine_mechanism": mechanism} if mechanism else {}
    config, net, train_data, _, _ = build(model, config_dict=tiny_config_dict, **extra)
    sharpen(net)
    seqs, lengths = random_sequences(6, MAX_LEN, net.n_items, seed=1)
    layers = export_attention(net, seqs, lengths)
    assert len(layers) == config["n_layers"]
    assert net.training, "the model's mode is restored"

    causal_future = torch.triu(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool), diagonal=1)
    for index, layer in enumerate(layers):
        attention = net.trm_encoder.layer[index].multi_head_attention
        assert getattr(attention, "keep_weights", False) is False
        assert layer.first_order.shape == (6, config["n_heads"], MAX_LEN, MAX_LEN)
        matrices = [layer.first_order] + ([layer.refined] if layer.refined is not None else [])
        for matrix in matrices:
            assert (matrix[..., causal_future] == 0).all(), "a position attends to a later one"
        # every mechanism but value defines a distribution over the allowed keys
        assert torch.allclose(layer.first_order.sum(-1), torch.ones(()), atol=1e-5)
        if mechanism in ("simple", "additive", "none"):
            assert torch.allclose(layer.refined.sum(-1), torch.ones(()), atol=1e-5)
        if mechanism in ("simple", "value", "additive"):
            assert not torch.allclose(layer.refined, layer.first_order, atol=1e-3)
        if model == "SASRec":
            assert layer.refined is None

        # the layer's output, recomputed from the exported weights, is the model's
        hidden = layer.inputs[0]
        value = heads(attention.value(hidden), config["n_heads"])
        recomputed = attention.LayerNorm(attention.dense(merge(layer.used @ value)) + hidden)
        assert torch.allclose(recomputed, layer.output, atol=1e-5)
        if index == len(layers) - 1:
            net.eval()
            with torch.no_grad():
                final = net.trm_encoder.layer[index].feed_forward(recomputed)
                expected = net.forward(seqs, lengths)
            assert torch.allclose(net.gather_indexes(final, lengths - 1), expected, atol=1e-5)


@pytest.mark.parametrize("mechanism", ["none", "simple", "stochastic", "value"])
def test_exported_stosa_attention_is_what_the_model_used(tiny_config_dict, mechanism):
    config, net, _, _, _ = build("STOSAAWR", config_dict=tiny_config_dict,
                                 refine_mechanism=mechanism)
    sharpen(net)
    seqs, lengths = random_sequences(5, MAX_LEN, net.n_items, seed=2)
    layers = export_attention(net, seqs, lengths)
    causal_future = torch.triu(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool), diagonal=1)
    for attention, layer in zip(net.encoder.attention_layers(), layers):
        assert (layer.refined[..., causal_future] == 0).all()
        assert (layer.first_order[..., causal_future] == 0).all()
        assert torch.allclose(layer.first_order.sum(-1), torch.ones(()), atol=1e-5)
        if mechanism != "value":
            assert torch.allclose(layer.refined.sum(-1), torch.ones(()), atol=1e-5)
        mean, cov, _ = layer.inputs
        h = config["n_heads"]
        mean_v = heads(attention.mean_value(mean), h)
        var_v = heads(positive_variance(attention.cov_value(cov)), h)
        weights = layer.used
        mean_out = attention.mean_LayerNorm(attention.mean_dense(merge(weights @ mean_v)) + mean)
        cov_out = attention.cov_LayerNorm(attention.cov_dense(merge(weights.pow(2) @ var_v)) + cov)
        assert torch.allclose(mean_out, layer.output[0], atol=1e-5)
        assert torch.allclose(cov_out, layer.output[1], atol=1e-5)


def test_user_sequence_is_the_users_history_before_the_test_item(tiny_config_dict, tiny_root):
    config, net, train_data, _, test_data = build("SASRecAWR", config_dict=tiny_config_dict)
    inter = pd.read_csv(tiny_root / "tiny" / "tiny.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    history = inter[inter["user_id"] == 5].sort_values("timestamp")["item_id"].astype(str).tolist()
    sequence = user_sequence(test_data.dataset, test_data, "5")
    assert sequence.user == "5"
    assert sequence.items == history[:-1][-MAX_LEN:]
    assert sequence.length == len(sequence.items)
    assert (sequence.item_seq[0, sequence.length:] == 0).all()


@pytest.fixture(scope="module")
def checkpoints(tiny_root, tmp_path_factory):
    """A trained SASRecAWR (simple) and a plain SASRec on the tiny dataset, with histories."""
    from recbole_awrsr.quick_start import run

    folder = tmp_path_factory.mktemp("runs")
    cwd = os.getcwd()
    os.chdir(folder)  # RecBole writes log/ into the working directory
    try:
        common = {"data_path": str(tiny_root), "checkpoint_dir": str(folder / "saved"),
                  "MAX_ITEM_LIST_LENGTH": MAX_LEN, "hidden_size": 16, "inner_size": 32,
                  "n_layers": 2, "n_heads": 2, "epochs": 3, "train_batch_size": 64,
                  "eval_batch_size": 64, "show_progress": False, "state": "ERROR", "seed": 7}
        _, refined = run("SASRecAWR", "tiny", config_dict={**common, "refine_mechanism": "simple"})
        _, base = run("SASRec", "tiny", config_dict=common)
    finally:
        os.chdir(cwd)
    return {"refined": refined.trainer.saved_model_file, "base": base.trainer.saved_model_file,
            "folder": folder / "saved"}


def read_png_csv(written_png, written_csvs):
    assert Path(written_png).read_bytes()[:8] == PNG_MAGIC
    return [pd.read_csv(f, index_col=0) for f in written_csvs]


def test_attention_command_writes_heat_maps_and_matrices(checkpoints, capsys):
    status = cli_main(["analysis", "attention", "--model-file", checkpoints["refined"],
                       "--user", "5", "--layer", "1", "--head", "0", "--last", "4",
                       "--base-model-file", checkpoints["base"], "--out", "out"])
    assert status == 0
    stem = Path("out/attention_user5_layer1_head0")
    png = stem.with_suffix(".png")
    csvs = [Path(f"{stem}_{part}.csv") for part in ("base", "first_order", "refined")]
    base, first, refined = read_png_csv(png, csvs)
    assert png.stat().st_size < 150_000
    assert all(p.exists() for p in csvs) and not list(Path("out").glob(".*tmp*"))

    # the CSV holds the last 4 positions of the exported matrices of layer 1, head 0
    from recbole_awrsr.quick_start import load_data_and_model

    _, net, dataset, _, _, test_data = load_data_and_model(checkpoints["refined"])
    sequence = user_sequence(dataset, test_data, "5")
    layer = export_attention(net, sequence.item_seq, torch.tensor([sequence.length]))[1]
    start = sequence.length - 4
    window = layer.refined[0, 0, start:sequence.length, start:sequence.length].numpy()
    assert refined.shape == (4, 4)
    assert refined.to_numpy() == pytest.approx(window, abs=1e-6)
    assert first.to_numpy() == pytest.approx(
        layer.first_order[0, 0, start:sequence.length, start:sequence.length].numpy(), abs=1e-6)
    assert list(refined.index) == [f"{p}:{sequence.items[p]}" for p in range(start, sequence.length)]
    # the base model's rows: the last query row over all its keys is a full distribution,
    # the window keeps its last 4 keys only
    assert (base.to_numpy() >= 0).all() and (base.to_numpy().sum(1) <= 1 + 1e-6).all()
    assert not base.to_numpy() == pytest.approx(first.to_numpy(), abs=1e-4)

    # every layer's sharpness on the test sequences, printed and in sharpness.csv, equal to
    # row_sharpness of the exported weights
    sharpness = pd.read_csv("out/sharpness.csv")
    assert list(sharpness["layer"]) == [0, 0, 1, 1]
    assert list(sharpness["weights"]) == ["refined", "first_order"] * 2
    seqs = test_data.dataset.inter_feat[dataset.item_id_list_field]
    exported = export_attention(net, seqs, (seqs != 0).sum(1))
    for row in sharpness.itertuples():
        weights = exported[row.layer].refined if row.weights == "refined" else \
            exported[row.layer].first_order
        expected = row_sharpness(weights, allowed_keys(seqs), seqs != 0)
        assert row.entropy == pytest.approx(expected["entropy"], abs=1e-6)
        assert row.recent == pytest.approx(expected["recent"], abs=1e-6)
        assert row.sequences == len(seqs)
    printed = capsys.readouterr().out
    assert "attention sharpness on" in printed and "layer 1: refined entropy" in printed


@pytest.mark.parametrize("flag,value,message", [
    ("--user", "no-such-user", "unknown user 'no-such-user'"),
    ("--layer", "2", "unknown layer 2: the model has 2 attention layer(s), 0..1"),
    ("--head", "2", "unknown head 2: layer 1 has 2 head(s), 0..1"),
])
def test_attention_command_refuses_unknown_user_layer_head(checkpoints, capsys, flag, value, message):
    status = cli_main(["analysis", "attention", "--model-file", checkpoints["refined"], flag, value,
                       "--out", "out"])
    err = capsys.readouterr().err
    assert status == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not Path("out").exists() or not list(Path("out").iterdir())


def test_module_entry_point_refuses_with_one_line_and_status(checkpoints):
    done = subprocess.run(
        [sys.executable, "-m", "recbole_awrsr.analysis", "attention", "--model-file",
         checkpoints["refined"], "--layer", "-3", "--out", "out"],
        capture_output=True, text=True, cwd=os.getcwd(), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown layer -3")


def test_module_entry_point_evaluates_a_checkpoint_in_a_fresh_process(checkpoints):
    # a fresh process has built no RecBole Config, whose constructor patches numpy for its metrics
    done = subprocess.run(
        [sys.executable, "-m", "recbole_awrsr.analysis", "topn", "--model-files",
         checkpoints["refined"], "--n", "3", "--out", "fresh"],
        capture_output=True, text=True, cwd=os.getcwd(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv("fresh/topn.csv")
    assert table["N"].tolist() == [3] and 0 <= table["ndcg"][0] <= table["recall"][0] <= 1


def hand_ranked_metrics(model_file, ns):
    """NDCG@N and Recall@N by hand: one held-out item per user, rank among all items."""
    from recbole_awrsr.quick_start import load_data_and_model

    config, net, _, _, _, test_data = load_data_and_model(model_file)
    net.eval()
    ranks = []
    with torch.no_grad():
        for interaction, _, _, _ in test_data:
            scores = net.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -math.inf  # the padding item is never recommended
            target = interaction[config["ITEM_ID_FIELD"]]
            positive = scores.gather(1, target.unsqueeze(1))
            ranks += ((scores > positive).sum(1) + 1).tolist()
    out = {}
    for n in ns:
        out[f"recall@{n}"] = sum(r <= n for r in ranks) / len(ranks)
        out[f"ndcg@{n}"] = sum(1 / math.log2(r + 1) for r in ranks if r <= n) / len(ranks)
    return out


def test_topn_command_uses_recboles_metrics_and_matches_a_hand_computation(checkpoints):
    ns = [1, 2, 5, 10]
    status = main(["topn", "--model-files", checkpoints["refined"], checkpoints["base"],
                   "--n", *map(str, ns), "--out", "top"])
    assert status == 0
    assert Path("top/topn.png").read_bytes()[:8] == PNG_MAGIC
    table = pd.read_csv("top/topn.csv")
    assert list(table["model"].unique()) == ["SASRecAWR simple", "SASRec"]
    assert list(table["N"][:4]) == ns
    for model_file in (checkpoints["refined"], checkpoints["base"]):
        expected = hand_ranked_metrics(model_file, ns)
        rows = table[table["file"] == model_file].set_index("N")
        for n in ns:
            assert rows.loc[n, "recall"] == pytest.approx(expected[f"recall@{n}"], abs=1e-6)
            assert rows.loc[n, "ndcg"] == pytest.approx(expected[f"ndcg@{n}"], abs=1e-6)
    assert table["recall"].max() > 0


def test_topn_command_refuses_a_missing_checkpoint(capsys):
    assert cli_main(["analysis", "topn", "--model-files", "nowhere.pth", "--out", "top"]) == 2
    assert "no checkpoint file 'nowhere.pth'" in capsys.readouterr().err


def test_curves_command_plots_every_run_of_a_folder(checkpoints, capsys):
    status = main(["curves", str(checkpoints["folder"]), "--metric", "ndcg@5", "--out", "cur"])
    assert status == 0
    assert Path("cur/curves.png").read_bytes()[:8] == PNG_MAGIC
    table = pd.read_csv("cur/curves.csv")
    assert set(table["run"]) == {"SASRecAWR simple", "SASRec"}
    history = pd.read_csv(history_path(checkpoints["refined"]))
    rows = table[table["run"] == "SASRecAWR simple"]
    assert rows["ndcg@5"].tolist() == pytest.approx(history["ndcg@5"].tolist())
    assert rows["grad_norm"].tolist() == pytest.approx(history["grad_norm"].tolist())

    assert cli_main(["analysis", "curves", str(checkpoints["folder"]), "--metric", "mrr@3",
                     "--out", "cur"]) == 2
    assert "no column 'mrr@3'" in capsys.readouterr().err
    assert cli_main(["analysis", "curves", "missing-run", "--out", "cur"]) == 2
    assert "no history file or run folder 'missing-run'" in capsys.readouterr().err


def test_cost_command_counts_the_refinement_matrices(capsys):
    n, layers = 6, 2
    status = cli_main(["analysis", "cost", "--n", str(n), "--d", "8", "--layers", str(layers),
                       "--heads", "2", "--batch", "4", "--items", "20", "--repeats", "1",
                       "--backbones", "sasrec", "stosa", "--out", "c"])
    assert status == 0
    markdown = Path("c/cost.md").read_text()
    assert "| SASRecAWR | simple | 2 |" in markdown
    table = pd.read_csv("c/cost.csv").set_index(["backbone", "variant"])
    for backbone in ("SASRecAWR", "STOSAAWR"):
        # n x n matrices per layer, shared by the heads: 2 for simple/additive, 3 for value
        assert table.loc[(backbone, "simple"), "extra_params"] == 2 * n * n * layers
        assert table.loc[(backbone, "additive"), "extra_params"] == 2 * n * n * layers
        assert table.loc[(backbone, "value"), "extra_params"] == 3 * n * n * layers
        assert table.loc[(backbone, "backbone +1 layer"), "layers"] == layers + 1
        assert (table.loc[backbone, "step_ms"] > 0).all()
    assert table.loc[("STOSAAWR", "stochastic"), "extra_params"] == 2 * n * n * layers
    assert cli_main(["analysis", "cost", "--d", "7", "--heads", "2", "--out", "c"]) == 2
