"""``recommend``: top-k items from a trained checkpoint (recbole_awrsr/recommend.py).

One SASRecAWR is trained for two epochs on a copy of the tiny dataset that also has a
``.item`` file with titles; every test reads that checkpoint.
"""

import importlib
import io
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.utils.case_study import full_sort_topk

from conftest import MAX_LEN, TINY_ITEMS, write_tiny_dataset
from recbole_awrsr import recommend
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.quick_start import load_data_and_model, run

# ``recbole_awrsr.recommend`` is the function (the package exports it); the module:
recommend_module = importlib.import_module("recbole_awrsr.recommend")

#: items of the tiny dataset that get a title (the rest have none); 99 is in no interaction
TITLED = {1: "One", 2: "Two Words", 3: "Three", 99: "Never Rated"}


def write_item_file(folder):
    lines = ["item_id:token\tmovie_title:token_seq\tgenre:token_seq"]
    lines += [f"{item}\t{title}\tDrama" for item, title in TITLED.items()]
    (folder / "tiny" / "tiny.item").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint path, data root): SASRecAWR trained 2 epochs on tiny (+ tiny.item)."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("recommend_atomic"))
    write_item_file(root)
    work = tmp_path_factory.mktemp("recommend_run")
    config = {"data_path": str(root), "checkpoint_dir": str(work / "saved"),
              "MAX_ITEM_LIST_LENGTH": MAX_LEN, "hidden_size": 16, "inner_size": 32,
              "n_layers": 2, "n_heads": 2, "epochs": 2, "train_batch_size": 64,
              "eval_batch_size": 64, "show_progress": False, "state": "ERROR", "seed": 7}
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        patch.chdir(work)  # RecBole's log/ folder lands here
        _, built = run("SASRecAWR", "tiny", None, config, saved=True)
    recommend_module.clear_cache()
    return built.trainer.saved_model_file, root


def inter_history(root, user):
    """The user's item ids (strings) in the order of tiny.inter's timestamps."""
    frame = pd.read_csv(root / "tiny" / "tiny.inter", sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    rows = frame[frame["user_id"] == str(user)]
    rows = rows.assign(t=rows["timestamp"].astype(float)).sort_values("t", kind="stable")
    return list(rows["item_id"])


def expected_topk(checkpoint, items, topk, exclude=()):
    """Top-k external ids by the model's own full_sort_predict on the last MAX_LEN items."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, model, dataset, _, _, _ = load_data_and_model(checkpoint)
    tokens = dataset.field2token_id[dataset.iid_field]
    window = [tokens[item] for item in items][-MAX_LEN:]
    seq = torch.zeros(1, MAX_LEN, dtype=torch.long)
    seq[0, :len(window)] = torch.tensor(window)
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({
            model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: torch.tensor([len(window)])}))[0]
    scores[0] = -np.inf
    for item in exclude:
        scores[tokens[item]] = -np.inf
    order = torch.argsort(scores, descending=True)[:topk]
    return [dataset.id2token(dataset.iid_field, int(i)) for i in order], scores[order].tolist()


@pytest.mark.parametrize("user", ["3", "17", "40"])
def test_topk_is_the_argsort_of_full_sort_predict_on_the_whole_sequence(trained, user):
    checkpoint, root = trained
    frame = recommend(checkpoint, users=[user], topk=7)
    items, scores = expected_topk(checkpoint, inter_history(root, user), 7)
    assert list(frame["item"]) == items
    assert list(frame["rank"]) == list(range(1, 8))
    assert np.allclose(frame["score"], scores, atol=1e-5)
    assert set(frame["user"]) == {user}
    # the window shown is the last MAX_LEN items of everything the dataset knows
    history = frame.attrs["history"][0]
    assert history["items"] == inter_history(root, user)[-MAX_LEN:]
    assert history["length"] == len(inter_history(root, user))


def test_several_users_come_back_in_the_order_asked(trained):
    checkpoint, _ = trained
    frame = recommend(checkpoint, users=["5", "2", "5"], topk=3)
    assert list(frame["user"]) == ["5"] * 3 + ["2"] * 3 + ["5"] * 3
    assert list(frame["item"][:3]) == list(frame["item"][6:])


def test_as_evaluated_is_recboles_full_sort_topk_on_the_test_input(trained):
    checkpoint, _ = trained
    frame = recommend(checkpoint, users=["3", "8"], topk=5, as_evaluated=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    uids = [dataset.field2token_id[dataset.uid_field][u] for u in ("3", "8")]
    scores, items = full_sort_topk(np.array(uids), model, test_data, 5)
    assert list(frame["item"]) == [dataset.id2token(dataset.iid_field, int(i)) for i in items.reshape(-1)]
    assert np.allclose(frame["score"], scores.reshape(-1).numpy(), atol=1e-5)


def test_exclude_seen_never_returns_an_item_of_the_user(trained):
    checkpoint, root = trained
    users = [str(u) for u in range(1, 41)]
    frame = recommend(checkpoint, users=users, topk=TINY_ITEMS, exclude_seen=True)
    for user in users:
        seen = set(inter_history(root, user))
        got = list(frame.loc[frame["user"] == user, "item"])
        assert not seen & set(got)
        assert len(got) == TINY_ITEMS - len(seen)  # every other item, ranked
        assert "0" not in got and "[PAD]" not in got
    # without it the seen items do come back (the check above is not empty)
    plain = recommend(checkpoint, users=["3"], topk=TINY_ITEMS)
    assert set(inter_history(root, "3")) <= set(plain["item"])
    items, _ = expected_topk(checkpoint, inter_history(root, "3"), 5, exclude=inter_history(root, "3"))
    assert list(frame.loc[frame["user"] == "3", "item"][:5]) == items


def test_a_history_gives_the_same_as_the_user_it_is(trained):
    checkpoint, root = trained
    items = inter_history(root, "12")
    by_user = recommend(checkpoint, users=["12"], topk=6, exclude_seen=True)
    by_history = recommend(checkpoint, history=" ".join(items), topk=6, exclude_seen=True)
    assert list(by_history["item"]) == list(by_user["item"])
    assert np.allclose(by_history["score"], by_user["score"])
    assert by_history["user"].isna().all()
    assert list(recommend(checkpoint, history=items, topk=6, exclude_seen=True)["item"]) == \
        list(by_user["item"])


def test_titles_come_from_the_item_file_without_changing_the_items(trained):
    checkpoint, _ = trained
    frame = recommend(checkpoint, history="4 5 6", topk=TINY_ITEMS)
    titles = dict(zip(frame["item"], frame["title"]))
    assert titles["1"] == "One" and titles["2"] == "Two Words"
    assert titles["10"] is None
    assert "99" not in titles  # only in the .item file: not an item of the trained model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, _, dataset, _, _, _ = load_data_and_model(checkpoint)
    assert dataset.item_num == TINY_ITEMS + 1  # training's config never loads the .item file


def test_ml100k_titles_are_read_from_recboles_package():
    from recbole_awrsr import Config, create_dataset

    config = Config(model="SASRecAWR", dataset="ml-100k", config_dict={"state": "ERROR"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        dataset = create_dataset(config)
    titles = recommend_module.read_titles(config, dataset)
    assert titles[dataset.field2token_id["item_id"]["1"]] == "Toy Story"
    assert titles[0] is None and sum(t is not None for t in titles) == dataset.item_num - 1


def test_second_call_does_not_rebuild_the_dataset(trained, monkeypatch):
    checkpoint, _ = trained
    recommend_module.clear_cache()
    calls = []
    original = recommend_module.load_data_and_model

    def counting(model_file, **kwargs):
        calls.append(model_file)
        return original(model_file, **kwargs)

    monkeypatch.setattr(recommend_module, "load_data_and_model", counting)
    first = recommend(checkpoint, users=["3"], topk=4)
    second = recommend(checkpoint, history="1 2", topk=4, exclude_seen=True)
    assert len(calls) == 1 and len(first) == len(second) == 4
    stat = os.stat(checkpoint)
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    recommend(checkpoint, users=["3"], topk=4)  # a rewritten checkpoint is loaded again
    assert len(calls) == 2


def run_cli(capsys, *args):
    status = cli_main(["recommend", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_output_parses_and_has_the_keys(trained, capsys):
    checkpoint, _ = trained
    status, out, _ = run_cli(capsys, checkpoint, "--user", "3", "7", "--topk", "4",
                             "--format", "json", "--exclude-seen")
    assert status == 0
    records = json.loads(out)
    assert len(records) == 8
    for record in records:
        assert {"user", "rank", "item", "score"} <= set(record) <= {"user", "rank", "item", "score", "title"}
        assert isinstance(record["item"], str) and isinstance(record["score"], float)
        assert ("title" in record) == (record["item"] in {"1", "2", "3"})
    assert [r["rank"] for r in records] == [1, 2, 3, 4] * 2
    assert [r["user"] for r in records] == ["3"] * 4 + ["7"] * 4
    frame = recommend(checkpoint, users=["3", "7"], topk=4, exclude_seen=True)
    assert [r["item"] for r in records] == list(frame["item"])


def test_csv_output_has_the_columns(trained, capsys):
    checkpoint, _ = trained
    status, out, _ = run_cli(capsys, checkpoint, "--history", "1 2 3", "--topk", "5", "--format", "csv")
    assert status == 0
    frame = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["user", "rank", "item", "score", "title"]
    assert list(frame["rank"]) == ["1", "2", "3", "4", "5"]


def test_table_output_shows_history_and_titles(trained, capsys):
    checkpoint, _ = trained
    status, out, _ = run_cli(capsys, checkpoint, "--history", "5 1 2", "--topk", "3")
    assert status == 0
    assert "history: 3 items known" in out
    assert "1 (One)" in out and "2 (Two Words)" in out
    assert "rank" in out and "score" in out


@pytest.mark.parametrize("args, named", [
    (["--user", "3", "999"], "'999'"),
    (["--history", "1 abc 77"], "'abc', '77'"),
    (["--history", "  "], "empty"),
    (["--history", "1 2", "--as-evaluated"], "as_evaluated"),
])
def test_mistakes_fail_with_one_line_naming_the_value(trained, capsys, args, named):
    checkpoint, _ = trained
    status, out, err = run_cli(capsys, checkpoint, *args)
    assert status == 2 and not out
    assert err.count("\n") == 1 and err.startswith("error: ") and named in err


def test_missing_or_foreign_checkpoint_fails_with_one_line(tmp_path, capsys):
    status, _, err = run_cli(capsys, str(tmp_path / "nothere.pth"), "--user", "1")
    assert status == 2 and err.count("\n") == 1 and "nothere.pth" in err
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    status, _, err = run_cli(capsys, str(junk), "--user", "1")
    assert status == 2 and err.count("\n") == 1 and "junk.pth" in err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    status, _, err = run_cli(capsys, str(tmp_path / "other.pth"), "--user", "1")
    assert status == 2 and "not a recbole-awrsr/RecBole checkpoint" in err


def test_python_api_refuses_bad_arguments(trained):
    checkpoint, _ = trained
    with pytest.raises(recommend_module.RecommendError, match="either users or a history"):
        recommend(checkpoint)
    with pytest.raises(recommend_module.RecommendError, match="topk"):
        recommend(checkpoint, users=["3"], topk=0)
