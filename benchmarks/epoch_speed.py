"""Whole training epochs and validation passes of SASRecAWR under the speed settings of
issue 15, side by side in one process.

Settings (each a column group of the table):

* ``before``: torch's cross-entropy, glibc malloc as it comes (blocks over 32 MB mmapped
  and returned on free), float32: the code before the lean cross-entropy and
  ``reuse_freed_memory``;
* ``lean CE``: the plugin's cross-entropy (``recbole_awrsr.model.cross_entropy``), malloc as
  it comes;
* ``after``: the plugin's cross-entropy and ``reuse_freed_memory`` (the defaults of session 7);
* ``block``: the block-wise cross-entropy from the hidden states (``linear_cross_entropy``)
  and ``reuse_freed_memory`` (the defaults since session 8);
* ``after + bf16``: ``after`` with ``enable_amp`` (bfloat16 autocast for training and
  scoring);
* ``block + bf16``: ``block`` with ``enable_amp``, which is what ``enable_amp: true`` runs
  today: under autocast ``linear_cross_entropy`` scores in bfloat16 and falls back to the
  lean cross-entropy;
* ``block + bf16, CE float32``: as ``block + bf16`` with the loss's scoring taken out of
  autocast (the block-wise cross-entropy in float32): the encoder alone in bfloat16.

One model per dataset (plugin defaults, ``--mechanism``, default simple), built through
``recbole_awrsr.quick_start.build``; each round runs one training epoch
(``trainer._train_epoch``: RecBole's loop, loading included) and one validation pass
(``trainer._valid_epoch``: full ranking, RecBole's metrics) per setting, the order of the
settings rotating from round to round, after one untimed round. Training goes on from
epoch to epoch (the weights differ between settings' epochs; the cost does not depend on
them). Medians over ``--rounds``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/epoch_speed.py --datasets beauty ml-1m --rounds 2 \\
        --out benchmarks/results/epoch
"""

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import converted, float32_linear_loss, lean_loss, torch_loss, write_report  # noqa: E402

import recbole_awrsr.model.sasrec_awr as sasrec_awr  # noqa: E402
from recbole_awrsr import Config, allocator  # noqa: E402
from recbole_awrsr.model.cross_entropy import linear_cross_entropy  # noqa: E402
from recbole_awrsr.quick_start import build  # noqa: E402

#: name -> (the model's loss of hidden states, item embeddings and targets, malloc keeps
#: freed memory, bfloat16 autocast)
SETTINGS = {
    "before": (torch_loss, False, False),
    "lean CE": (lean_loss, False, False),
    "after": (lean_loss, True, False),
    "block": (linear_cross_entropy, True, False),
    "after + bf16": (lean_loss, True, True),
    "block + bf16": (linear_cross_entropy, True, True),
    "block + bf16, CE float32": (float32_linear_loss, True, True),
}

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4


def malloc_mode(keep):
    """Switch glibc malloc between keeping freed memory and its default's steady state
    (mmap above 32 MB, trim above 64 MB: where its dynamic thresholds end up)."""
    libc = allocator.glibc()
    if keep:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    else:
        libc.mallopt(M_MMAP_MAX, 65536)
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 * 2**20)
        ctypes.CDLL(None).malloc_trim(0)


def measure(dataset, mechanism, rounds, names):
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        "refine_mechanism": mechanism, "save_history": False, "state": "ERROR",
        "reuse_freed_memory": False, "show_progress": False})
    built = build(config)
    trainer = built.trainer
    times = {(name, part): [] for name in names for part in ("train", "valid")}
    epoch = 0
    try:
        for round_ in range(rounds + 1):  # round 0 warms up
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                loss, keep, amp = SETTINGS[name]
                sasrec_awr.linear_cross_entropy = loss
                malloc_mode(keep)
                trainer.enable_amp = amp
                started = time.perf_counter()
                trainer._train_epoch(built.train_data, epoch)
                trained = time.perf_counter()
                trainer._valid_epoch(built.valid_data)
                validated = time.perf_counter()
                epoch += 1
                if round_:
                    times[(name, "train")].append(trained - started)
                    times[(name, "valid")].append(validated - trained)
                print(f"{dataset} round {round_} {name}: train {trained - started:.1f} s, "
                      f"valid {validated - trained:.1f} s", file=sys.stderr, flush=True)
    finally:
        sasrec_awr.linear_cross_entropy = linear_cross_entropy
    record = {"dataset": dataset, "mechanism": mechanism, "rounds": rounds,
              "train_batches": len(built.train_data), "items": built.dataset.item_num}
    for (name, part), values in times.items():
        record[f"{name}|{part}_s"] = statistics.median(values)
        record[f"{name}|{part}_all"] = values
    return record


def markdown(records, names):
    header = ["dataset (items)", "mechanism"] + [f"{name}: train s / valid s" for name in names] + [
        f"{names[0]} / {name} (train+valid)" for name in names[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        total = {name: r[f"{name}|train_s"] + r[f"{name}|valid_s"] for name in names}
        cells = [f"{r['dataset']} ({r['items']:,})", r["mechanism"]]
        cells += [f"{r[f'{name}|train_s']:.1f} / {r[f'{name}|valid_s']:.1f}" for name in names]
        cells += [f"{total[names[0]] / total[name]:.2f}x" for name in names[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty", "ml-1m"])
    parser.add_argument("--mechanism", default="simple")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", help="folder for results.json and table.md")
    args = parser.parse_args(argv)
    if allocator.glibc() is None:
        parser.error("this benchmark switches glibc's malloc settings: it needs Linux with glibc")
    records = []
    for dataset in converted(args.datasets):
        records.append(measure(dataset, args.mechanism, args.rounds, args.settings))
    write_report(args.out, records, markdown(records, args.settings))


if __name__ == "__main__":
    main()
