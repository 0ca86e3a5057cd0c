"""``recbole-awrsr recommend``: the top-k next items of a trained checkpoint, per user.

``recbole-awrsr recommend CHECKPOINT --user ID [ID ...] [--topk 10] [--exclude-seen]
[--as-evaluated] [--format table|json|csv]``, or ``--history "ID ID ID"`` instead of
``--user`` for an anonymous sequence of known item ids. From Python,
:func:`recommend` returns the same rows as a pandas DataFrame.

What a user's input is: everything the dataset knows of the user, oldest first
(training items, then the validation item, then the test item), cut to the model's
window of the last n = ``MAX_ITEM_LIST_LENGTH`` items. ``--as-evaluated`` takes instead
the sequence the test metrics scored (all but the test item). Every input, a user's,
an evaluated one or a given history, is scored the same way: one right-padded
``ITEM_SEQ``/``ITEM_SEQ_LEN`` row per query, ranked by RecBole's own
``recbole.utils.case_study.full_sort_topk`` (through the model's ``full_sort_predict``).

Titles come from the dataset's ``.item`` file when it has a title column
(``movie_title`` for ml-100k and the converted ml-1m). The file is read here and not
through RecBole: loading item features into the dataset (``load_col: {item: ...}``)
would give RecBole items that only the ``.item`` file lists, changing the item ids the
checkpoint was trained with. Training's config is left as it was.
"""

import argparse
import collections
import contextlib
import csv
import io
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from recbole.data.interaction import Interaction
from recbole.utils.case_study import full_sort_scores, full_sort_topk

from recbole_awrsr import cli
from recbole_awrsr.errors import CheckpointError, RecommendError
from recbole_awrsr.quick_start import load_data_and_model

#: columns of the result, in order (``title`` is None where the dataset has none)
COLUMNS = ("user", "rank", "item", "score", "title")
FORMATS = ("table", "json", "csv")
#: ``.item`` columns that hold a readable name, first found wins
TITLE_FIELDS = ("movie_title", "title", "name")
#: history items shown above each user's recommendations in the table
SHOWN_HISTORY = 5
#: checkpoints kept loaded (a loaded ML-1M dataset holds about a GB)
CACHE_SIZE = 2
#: queries scored per call of the model
BATCH = 256
#: the field that numbers the query rows for ``full_sort_scores`` (see :class:`QueryRows`)
ROW_FIELD = "recommend_row"


@dataclass
class Loaded:
    """One checkpoint, loaded once, with the lookups every query needs.

    ``last_row`` and ``test_row`` map an internal user id to its row in the full
    (augmented) ``dataset.inter_feat`` and in the test set (-1: none), shape
    (user_num,); ``titles`` maps an internal item id to its title or None,
    shape (item_num,).
    """
    config: object
    model: object
    dataset: object
    test_data: object
    users: np.ndarray
    last_row: np.ndarray
    test_row: np.ndarray
    titles: np.ndarray


_CACHE = collections.OrderedDict()


def clear_cache():
    """Forget every loaded checkpoint (the next call loads from disk again)."""
    _CACHE.clear()


def cache_key(checkpoint):
    """(real path, modification time, size) of a checkpoint: a rewritten file is reloaded."""
    path = os.path.realpath(os.fspath(checkpoint))
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


@contextlib.contextmanager
def quiet_loading():
    """Silence RecBole's INFO logging (the whole config, the dataset summary) and pandas'
    FutureWarnings about RecBole's own code while a checkpoint is loaded: they would bury
    the recommendations, and ``--format json`` output must stay parseable."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logging.disable(previous)


def last_index(ids, size):
    """For each id in 0..size-1, the position of its last occurrence in ``ids`` (-1: none).

    ``ids``: shape (rows,), integers in [0, size). Returns shape (size,).
    """
    found = np.full(size, -1, dtype=np.int64)
    backwards = ids[::-1]
    present, first_backwards = np.unique(backwards, return_index=True)
    found[present] = len(ids) - 1 - first_backwards
    return found


def read_titles(config, dataset):
    """Title per internal item id from ``<data_path>/<dataset>.item``, shape (item_num,).

    All None when the dataset has no ``.item`` file or it has no title column; items the
    file does not list keep None.
    """
    titles = np.full(dataset.item_num, None, dtype=object)
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    if not os.path.isfile(path):
        return titles
    encoding = config["encoding"] or "utf-8"
    with open(path, encoding=encoding, newline="") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    names = [field.split(":")[0] for field in header]
    item_field = dataset.iid_field
    title_field = next((name for name in TITLE_FIELDS if name in names), None)
    if item_field not in names or title_field is None:
        return titles
    frame = pd.read_csv(path, sep="\t", header=0, usecols=[names.index(item_field), names.index(title_field)],
                        dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding=encoding)
    frame.columns = [field.split(":")[0] for field in frame.columns]
    tokens = dataset.field2token_id[item_field]
    for token, title in zip(frame[item_field], frame[title_field]):
        internal = tokens.get(token)
        if internal is not None and title:
            titles[internal] = title
    return titles


def load(checkpoint, trusted=False):
    """The :class:`Loaded` checkpoint, from the cache when this file was loaded before.

    A missing file or one that is not a checkpoint raises
    :class:`~recbole_awrsr.errors.CheckpointError` (from the loader, for the latter).
    """
    if not os.path.isfile(os.fspath(checkpoint)):
        raise CheckpointError(f"no checkpoint file '{os.fspath(checkpoint)}'")
    key = cache_key(checkpoint)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    with quiet_loading():
        config, model, dataset, _, _, test_data = load_data_and_model(os.fspath(checkpoint),
                                                                      trusted=trusted)
    uid_field = dataset.uid_field
    # after loading, dataset.inter_feat holds every user's rows (RecBole's prefixes, one
    # per interaction but the first) in the order leave-one-out split them, so a user's
    # last row is the test row when there is one
    users = dataset.inter_feat[uid_field].numpy()
    tests = test_data.dataset.inter_feat[uid_field].numpy()
    loaded = Loaded(config, model, dataset, test_data, users,
                    last_index(users, dataset.user_num), last_index(tests, dataset.user_num),
                    read_titles(config, dataset))
    _CACHE[key] = loaded
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


def user_ids(dataset, users):
    """Internal ids of external user ids; every unknown one is named in one message."""
    tokens = dataset.field2token_id[dataset.uid_field]
    unknown = [str(user) for user in users if str(user) not in tokens or tokens[str(user)] == 0]
    if unknown:
        examples = ", ".join(list(tokens)[1:4])
        raise RecommendError(
            f"unknown user id(s) {', '.join(repr(u) for u in unknown)}: not in dataset "
            f"'{dataset.dataset_name}' after its filtering (ids as in its .inter file, e.g. {examples})")
    return [tokens[str(user)] for user in users]


def item_ids(dataset, items):
    """Internal ids of external item ids; every unknown one is named in one message."""
    tokens = dataset.field2token_id[dataset.iid_field]
    unknown = [str(item) for item in items if str(item) not in tokens or tokens[str(item)] == 0]
    if unknown:
        raise RecommendError(
            f"unknown item id(s) {', '.join(repr(i) for i in unknown)}: not in dataset "
            f"'{dataset.dataset_name}' after its filtering (ids as in its .inter file)")
    return [tokens[str(item)] for item in items]


def user_sequence(loaded, user, as_evaluated):
    """A user's input: (internal item ids oldest first, at most the window n; items known).

    Whole: the user's last row of the dataset (its items, then its target item), that is
    training, validation and test items. ``as_evaluated``: the test row's items only, the
    input the test metrics scored. ``items known`` counts what the window was cut from.
    """
    dataset = loaded.dataset
    source = loaded.test_data.dataset.inter_feat if as_evaluated else dataset.inter_feat
    row = (loaded.test_row if as_evaluated else loaded.last_row)[user]
    token = dataset.id2token(dataset.uid_field, user)
    if row < 0:
        what = "no test sequence" if as_evaluated else "a single interaction (no sequence)"
        raise RecommendError(f"user '{token}' has {what} in dataset '{dataset.dataset_name}'")
    length = int(source[dataset.item_list_length_field][row])
    items = source[dataset.item_id_list_field][row, :length].tolist()
    if not as_evaluated:
        items.append(int(source[dataset.iid_field][row]))
    # one row per interaction but the first: the user's rows + 1 items in all, the test
    # row's input is all of them but the test item
    known = int(np.count_nonzero(loaded.users == user)) + (0 if as_evaluated else 1)
    return items[-loaded.config["MAX_ITEM_LIST_LENGTH"]:], known


def seen_items(loaded, user):
    """Every internal item id the user interacted with, in any split, shape (k,)."""
    feat = loaded.dataset.inter_feat
    rows = torch.from_numpy(np.flatnonzero(loaded.users == user))
    # a row holds its window and its target; the first item is in the first row's window
    items = torch.cat([feat[loaded.dataset.item_id_list_field][rows].reshape(-1),
                       feat[loaded.dataset.iid_field][rows]])
    items = torch.unique(items)
    return items[items > 0]


class QueryRows:
    """The part of a RecBole full-sort test loader that ``full_sort_scores`` reads, over
    our own query rows: ``dataset.uid_field``, ``dataset.inter_feat``, ``dataset[index]``,
    ``dataset.item_num`` and ``is_sequential``.

    Rows are told apart by :data:`ROW_FIELD` (0..B-1) rather than by user: a history has
    no user, and a user may be asked for twice.
    """
    is_sequential = True

    def __init__(self, interaction, item_num):
        self.dataset = self
        self.uid_field = ROW_FIELD
        self.inter_feat = interaction
        self.item_num = item_num

    def __getitem__(self, index):
        return self.inter_feat[index]


def query_interaction(loaded, sequences, users):
    """One right-padded row per sequence (oldest item first, as RecBole pads).

    ``sequences``: lists of internal item ids, each at most n long; ``users``: internal
    user id per row (0 for a history). Fields: ITEM_SEQ (B, n), ITEM_SEQ_LEN (B,), the
    user id (B,) and :data:`ROW_FIELD` (B,).
    """
    model, n = loaded.model, loaded.config["MAX_ITEM_LIST_LENGTH"]
    seq = torch.zeros(len(sequences), n, dtype=torch.long)
    for row, items in enumerate(sequences):
        seq[row, :len(items)] = torch.tensor(items, dtype=torch.long)
    return Interaction({
        ROW_FIELD: torch.arange(len(sequences)),
        loaded.dataset.uid_field: torch.tensor(users, dtype=torch.long),
        model.ITEM_SEQ: seq,
        model.ITEM_SEQ_LEN: torch.tensor([len(items) for items in sequences], dtype=torch.long),
    })


def top_items(loaded, sequences, users, topk, excluded=None):
    """Scores and internal ids of the top-k items per sequence, best first.

    Both (B, k) tensors, k = min(topk, items); the padding item 0 is never among them,
    nor an item of ``excluded[row]`` (1-d tensors of internal ids, or None: exclude
    nothing). Entries that only -inf could fill (everything else excluded) have score
    -inf; the caller drops them.
    """
    item_num = loaded.dataset.item_num
    k = min(topk, item_num - 1)
    device = loaded.config["device"]
    rows = QueryRows(query_interaction(loaded, sequences, users), item_num)
    row_ids = np.arange(len(sequences))
    try:
        if excluded is None:
            scores, items = full_sort_topk(row_ids, loaded.model, rows, k, device)
        else:
            # full_sort_topk is full_sort_scores + topk; the seen items are masked between
            scores = full_sort_scores(row_ids, loaded.model, rows, device)
            for row, items in enumerate(excluded):
                scores[row, items.to(scores.device)] = -np.inf
            scores, items = torch.topk(scores, k)
    except KeyError as error:
        raise RecommendError(
            f"model {loaded.config['model']} reads field {error} to score, and recommend builds "
            f"only the item sequence and its length") from None
    return scores.cpu(), items.cpu()


def recommend(checkpoint, users=None, history=None, topk=10, exclude_seen=False, as_evaluated=False,
              trusted=False):
    """The top-``topk`` next items for users of the checkpoint's dataset, or for a history.

    ``users``: external user ids (a list, or one id); each user's input is everything
    the dataset knows of them (``as_evaluated``: the test metrics' input instead).
    ``history``: external item ids, oldest first (a list, or one space-separated
    string): an anonymous visitor. ``exclude_seen`` drops the user's items from every
    split (for a history: its items). ``trusted`` unpickles the checkpoint fully (see
    :func:`recbole_awrsr.compat.load_checkpoint`; only for files you trust).

    Returns a DataFrame with :data:`COLUMNS`, one row per recommended item, per query in
    the order asked, ``rank`` 1 = best; ``user`` and ``item`` are external ids (strings;
    ``user`` None for a history), ``title`` None where unknown. ``frame.attrs["history"]``
    lists per query ``{"user", "items", "titles", "length", "rows"}``: the input window
    (external ids, oldest first), the number of items it was cut from and the number of
    its rows in the frame. A checkpoint is loaded once per process (cached by path,
    modification time and size).
    """
    if (users is None) == (history is None):
        raise RecommendError("give either users or a history, not both and not neither")
    if not isinstance(topk, (int, np.integer)) or isinstance(topk, bool) or topk < 1:
        raise RecommendError(f"topk must be a positive integer, got {topk!r}")
    if history is not None and as_evaluated:
        raise RecommendError("as_evaluated needs users: a history is scored as it is given")
    loaded = load(checkpoint, trusted)
    dataset, n = loaded.dataset, loaded.config["MAX_ITEM_LIST_LENGTH"]

    if history is not None:
        given = history.split() if isinstance(history, str) else [str(item) for item in history]
        if not given:
            raise RecommendError("the history is empty: give at least one item id")
        items = item_ids(dataset, given)
        labels, internal_users = [None], [0]
        sequences, known = [items[-n:]], [len(items)]
        excluded = [torch.unique(torch.tensor(items))] if exclude_seen else None
    else:
        labels = [str(user) for user in ([users] if isinstance(users, (str, int)) else users)]
        if not labels:
            raise RecommendError("no user ids given")
        internal_users = user_ids(dataset, labels)
        sequences, known = zip(*[user_sequence(loaded, user, as_evaluated) for user in internal_users])
        excluded = [seen_items(loaded, user) for user in internal_users] if exclude_seen else None

    rows, histories = [], []
    tokens = dataset.field2id_token[dataset.iid_field]
    for start in range(0, len(sequences), BATCH):
        part = slice(start, start + BATCH)
        scores, items = top_items(loaded, sequences[part], internal_users[part], topk,
                                  None if excluded is None else excluded[part])
        for offset, (label, row_scores, row_items) in enumerate(zip(labels[part], scores, items)):
            sequence = sequences[start + offset]
            # -inf marks a place only an excluded item could fill
            kept = [(s, i) for s, i in zip(row_scores.tolist(), row_items.tolist()) if s != -np.inf]
            rows += [{"user": label, "rank": rank, "item": str(tokens[item]), "score": score,
                      "title": loaded.titles[item]}
                     for rank, (score, item) in enumerate(kept, start=1)]
            histories.append({"user": label, "items": [str(tokens[item]) for item in sequence],
                              "titles": [loaded.titles[item] for item in sequence],
                              "length": known[start + offset], "rows": len(kept)})
    # object columns keep None as None: pandas 3 would infer its string dtype and make
    # a missing title or user NaN
    frame = pd.DataFrame({name: pd.Series([row[name] for row in rows], dtype=object)
                          for name in COLUMNS})
    frame["rank"] = frame["rank"].astype(int)
    frame["score"] = frame["score"].astype(float)
    frame.attrs["history"] = histories
    return frame


def to_json(frame):
    """A JSON list, one object per recommended item; ``title`` only where known."""
    records = []
    for row in frame.itertuples(index=False):
        record = {"user": row.user, "rank": int(row.rank), "item": row.item, "score": float(row.score)}
        if row.title is not None:
            record["title"] = row.title
        records.append(record)
    return json.dumps(records, indent=2, ensure_ascii=False)


def to_csv(frame):
    """CSV text with :data:`COLUMNS` (empty ``title`` where unknown)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, columns=list(COLUMNS), lineterminator="\n")
    return buffer.getvalue()


def named(item, title):
    """``item (title)``, or the item alone."""
    return f"{item} ({title})" if title else str(item)


def to_table(frame):
    """Readable text: per query, its last history items and then its recommendations."""
    blocks, start = [], 0
    for history in frame.attrs.get("history", []):
        label = "history" if history["user"] is None else f"user {history['user']}"
        shown = list(zip(history["items"], history["titles"]))[-SHOWN_HISTORY:]
        lines = [f"{label}: {history['length']} items known; last {len(shown)}, oldest first:"]
        lines += [f"  {named(item, title)}" for item, title in shown]
        # the frame lists the queries in order; a user asked for twice is shown twice
        rows = frame.iloc[start:start + history["rows"]]
        start += history["rows"]
        width = max([len(str(item)) for item in rows["item"]] + [4])
        lines.append(f"  {'rank':>4}  {'item':<{width}}  {'score':>9}  title")
        lines += [f"  {row.rank:>4}  {row.item:<{width}}  {row.score:>9.4f}  {row.title or ''}".rstrip()
                  for row in rows.itertuples(index=False)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def build_parser():
    """The ``recommend`` command's arguments."""
    parser = argparse.ArgumentParser(
        prog="recbole-awrsr recommend",
        description="Top-k next items from a trained checkpoint, for users of its dataset "
        "(after everything the dataset knows of them) or for a given history of item ids.")
    parser.add_argument("checkpoint", help="checkpoint file (.pth) written by training")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", metavar="ID", help="user ids as in the dataset's .inter file")
    who.add_argument("--history", metavar='"ID ID ..."',
                     help="item ids of an anonymous sequence, oldest first, space-separated")
    parser.add_argument("--topk", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="never recommend an item the user has (any split; for --history: in it)")
    parser.add_argument("--as-evaluated", action="store_true",
                        help="score the input the test metrics scored (without the test item)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="unpickle the checkpoint fully (it can run code: only for files you "
                             "trust, e.g. ones RecBole's own trainer wrote)")
    return parser


def main(argv=None):
    """Run the command (``argv`` without ``recommend``); returns the exit status.

    Without ``argv`` the process's command line goes through :func:`recbole_awrsr.cli.main`,
    which reports mistakes as one line; with it, a mistake raises :class:`RecommendError`.
    """
    if argv is None:
        return cli.main(["recommend", *sys.argv[1:]])
    args = build_parser().parse_args(argv)
    frame = recommend(args.checkpoint, users=args.user, history=args.history, topk=args.topk,
                      exclude_seen=args.exclude_seen, as_evaluated=args.as_evaluated,
                      trusted=args.trust_checkpoint)
    formatter = {"table": to_table, "json": to_json, "csv": to_csv}[args.format]
    text = formatter(frame)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
