"""Shared fixtures: a tiny atomic dataset written per session, and model builders.

Every test runs in its own temporary working directory, so RecBole's ``log/``
and ``saved/`` folders never land in the repository and no test depends on the
directory pytest was started from.
"""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

TINY_USERS, TINY_ITEMS = 40, 30
MAX_LEN = 8


def write_tiny_dataset(root, name="tiny", users=TINY_USERS, items=TINY_ITEMS, seed=0):
    """Write ``root/name/name.inter``: every user has 6-14 interactions with increasing timestamps."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(1, users + 1):
        length = int(rng.integers(6, 15))
        # a drifting walk over the items gives the models a learnable sequential signal
        start = int(rng.integers(1, items + 1))
        for step in range(length):
            item = (start + step + int(rng.integers(0, 2))) % items + 1
            lines.append(f"{user}\t{item}\t1\t{1000 * user + step}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return Path(root)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Folder holding ``tiny/tiny.inter`` (use as ``data_path``)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("atomic"))


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def ray_home(tmp_path_factory):
    """One HOME for every Ray start of the session: Ray >= 2.5x writes an auth token to
    ~/.ray and keeps using it in the process, so a later start under another HOME finds
    no token and its GCS server never comes up."""
    return tmp_path_factory.mktemp("ray_home")


@pytest.fixture
def heads_search(tiny_config_dict, tmp_path, monkeypatch, ray_home):
    """``argv(out, epochs)``: the ``tune`` command of a two-trial grid search (``n_heads`` 1
    and 2, one trial at a time, no ASHA) on the tiny dataset, run from ``tmp_path`` with
    Ray's files kept there."""
    monkeypatch.setenv("HOME", str(ray_home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "heads.hyper").write_text("n_heads choice [1, 2]\n")
    shutil.copytree(Path(tiny_config_dict["data_path"]) / "tiny", tmp_path / "dataset_atomic" / "tiny")
    fixed = {key: value for key, value in tiny_config_dict.items()
             if key not in ("checkpoint_dir", "n_heads", "data_path")}

    def argv(out, epochs):
        keys = {**fixed, "epochs": epochs, "stopping_step": 100}
        return (["tune", "--model=SASRecAWR", "--dataset=tiny", "--params_file=heads.hyper",
                 "--search", "grid", "--num-samples", "1", "--num-cpus", "1", "--scheduler", "fifo",
                 "--out", out, "--no-test"] + [f"--{key}={value}" for key, value in keys.items()])

    return argv


@pytest.fixture
def tiny_config_dict(tiny_root, tmp_path):
    """Small, fast settings on the tiny dataset."""
    return {
        "data_path": str(tiny_root),
        "checkpoint_dir": str(tmp_path / "saved"),
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 2,
        "n_heads": 2,
        "epochs": 2,
        "train_batch_size": 64,
        "eval_batch_size": 64,
        "show_progress": False,
        "state": "ERROR",
        "seed": 7,
    }


def build(model, dataset="tiny", config_dict=None, **overrides):
    """(config, model, train_data, valid_data, test_data) for a model on a dataset."""
    from recbole_awrsr import Config
    from recbole_awrsr.quick_start import build as build_run

    config = Config(model=model, dataset=dataset, config_dict={**(config_dict or {}), **overrides})
    built = build_run(config, trainer=False)
    return config, built.model, built.train_data, built.valid_data, built.test_data


def random_sequences(batch, length, n_items, seed=0, min_len=1):
    """Right-padded item sequences (B, length) and their lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, length + 1, (batch,), generator=gen)
    seqs = torch.randint(1, n_items, (batch, length), generator=gen)
    positions = torch.arange(length).unsqueeze(0)
    seqs = seqs.masked_fill(positions >= lengths.unsqueeze(1), 0)
    return seqs, lengths


def encoded(model, seqs):
    """``model.encode(seqs)`` in eval mode without gradients: a tuple of (B, n, d) streams."""
    model.eval()
    with torch.no_grad():
        return tuple(model.encode(seqs))


def assert_no_leakage(model, seqs):
    """Changing the item at position t changes no stream before t, and changes the first
    stream at t (full-length sequences (B, n) of a model with the ``encode`` contract)."""
    base = encoded(model, seqs)
    for t in range(1, seqs.shape[1]):
        changed = seqs.clone()
        changed[:, t] = (changed[:, t] % (model.n_items - 1)) + 1  # a different real item
        out = encoded(model, changed)
        for stream, (new, old) in enumerate(zip(out, base)):
            assert torch.allclose(new[:, :t], old[:, :t], atol=1e-6), f"stream {stream} before {t} changed"
        assert not torch.allclose(out[0][:, t], base[0][:, t], atol=1e-6), "the change must be visible at t"


def assert_prefix_consistent(model, seqs):
    """The state at position t of full-length sequences (B, n) is that of their prefix of
    length t + 1, from ``encode`` at t and from ``forward`` (the last position's state)."""
    full = encoded(model, seqs)
    for t in range(seqs.shape[1]):
        prefix = seqs.clone()
        prefix[:, t + 1:] = 0
        for stream, (short, long) in enumerate(zip(encoded(model, prefix), full)):
            assert torch.allclose(short[:, t], long[:, t], atol=1e-5), f"stream {stream} at {t}"
        with torch.no_grad():
            last = model(prefix, torch.full((len(seqs),), t + 1))
        last = last if isinstance(last, tuple) else (last,)
        for stream, (state, long) in enumerate(zip(last, full)):
            assert torch.allclose(state, long[:, t], atol=1e-5), f"forward's stream {stream} at {t}"


#: refinement settings other than the defaults, one key changed at a time: the property
#: tests (leakage, prefix consistency, trimming) run every one of them
VARIANTS = [
    {"refine_input": "centered"},
    {"refine_input": "rownorm"},
    {"refine_init": "scaled"},
    {"refine_init": "identity"},
    {"refine_temperature": "learned"},
]


def variant_id(variant):
    """A readable test id for a dict of config overrides."""
    return "-".join(f"{key.replace('refine_', '')}={value}" for key, value in variant.items())


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_rows(path):
    """Lines of an atomic file, header included, without line breaks."""
    return Path(path).read_text(encoding="utf-8").splitlines()


def snapshot(folder):
    """Everything under ``folder`` (relative path -> bytes), or None when it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


#: the real data folder beside the repository (tests that read it skip without it)
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
#: the header of an atomic .inter file the converters write
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def write(path, data):
    """Write text (UTF-8) or bytes to ``path``, making its folder, and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def first_batch(loader):
    """The first batch of a RecBole loader, without the extras of an evaluation batch."""
    for batch in loader:
        return batch[0] if isinstance(batch, tuple) else batch


def loss_before_and_after_training(model, train_data, min_steps, lr=5e-3, autocast=False):
    """A fixed training batch's loss in eval mode before and after Adam on ``train_data``.

    Trains whole passes over ``train_data`` until at least ``min_steps`` steps are done.
    ``autocast``: the steps and both losses under CPU autocast (as RecBole's trainer
    wraps a step with ``enable_amp``), and every step's loss must be finite.
    Returns (before, after) as floats.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch = first_batch(train_data)

    def eval_loss():
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", enabled=autocast):
            return model.calculate_loss(batch).item()

    before, steps = eval_loss(), 0
    model.train()
    while steps < min_steps:
        for data in train_data:
            optimizer.zero_grad()
            with torch.autocast("cpu", enabled=autocast):
                loss = model.calculate_loss(data)
            assert math.isfinite(loss.item()), f"step {steps}"
            loss.backward()
            optimizer.step()
            steps += 1
    return before, eval_loss()
