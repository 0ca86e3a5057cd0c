"""torch's cross-entropy against the plugin's two (``recbole_awrsr.model.cross_entropy``), per
training step of SASRecAWR with ``train_targets: all``: ``lean`` (scores made by a product,
softmax minus one-hot in place; the default until session 8) and ``block`` (block-wise from
the hidden states, ``linear_cross_entropy``, the default since).

For each dataset (ml-100k; beauty and ml-1m when converted under ``dataset_atomic/``) and
each mechanism (``--mechanisms``), one model with the plugin's defaults (the grids'
settings: 128 rows a batch, stride n/2, 4 length groups) is built through
``recbole_awrsr.quick_start.build``; RecBole's training step (zero_grad, loss, backward,
Adam step) runs on each of the first ``--batches`` training batches with the loss's
cross-entropy being torch's (``torch.nn.functional.cross_entropy`` of the product) or one of
the plugin's, taking turns batch by batch (each batch starts from the same weights and
optimizer state), ``--repeats`` rounds after an untimed one. The table gives medians, the
ratios (above 1: the second is faster) and the largest relative difference of the losses
from torch's. ``--amp`` times them under bfloat16 autocast instead (where ``block``
falls back to ``lean``). malloc is left as it comes
(``reuse_freed_memory: False``), so that the table isolates the loss.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/loss_speed.py --out benchmarks/results/loss
"""

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import converted, first, lean_loss, torch_loss, write_report  # noqa: E402

import recbole_awrsr.model.sasrec_awr as sasrec_awr  # noqa: E402
from recbole_awrsr import Config  # noqa: E402
from recbole_awrsr.model.cross_entropy import linear_cross_entropy  # noqa: E402
from recbole_awrsr.quick_start import build  # noqa: E402

#: name -> the model's loss of (hidden (T, d), item embeddings (N, d), targets (T,))
LOSSES = {"torch": torch_loss, "lean": lean_loss, "block": linear_cross_entropy}


def measure(dataset, mechanism, batches, repeats, amp):
    """Median seconds per training step with each cross-entropy, and the losses' difference."""
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        "refine_mechanism": mechanism, "save_history": False, "state": "ERROR",
        "reuse_freed_memory": False})
    built = build(config, trainer=False)
    model = built.model
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    start = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
    train_batches = first(built.train_data, batches)

    def step(batch, name):
        model.load_state_dict(start[0])
        optimizer.load_state_dict(start[1])
        sasrec_awr.linear_cross_entropy = LOSSES[name]
        torch.manual_seed(0)  # the same dropout masks for both
        started = time.perf_counter()
        optimizer.zero_grad()
        with torch.autocast(device_type="cpu", enabled=amp):
            loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started, loss.item()

    times = {name: [] for name in LOSSES}
    difference = {name: 0.0 for name in LOSSES}
    try:
        for round_ in range(repeats + 1):  # round 0 warms up (allocator, oneDNN kernels)
            for batch in train_batches:
                losses = {}
                names = list(LOSSES)
                shift = round_ % len(names)  # each loss takes each place in the turn
                for name in names[shift:] + names[:shift]:
                    seconds, losses[name] = step(batch, name)
                    if round_:
                        times[name].append(seconds)
                for name in LOSSES:
                    difference[name] = max(difference[name],
                                           abs(losses[name] - losses["torch"]) / abs(losses["torch"]))
    finally:
        sasrec_awr.linear_cross_entropy = linear_cross_entropy
    record = {"dataset": dataset, "mechanism": mechanism, "amp": amp, "items": built.dataset.item_num,
              "steps_each": len(times["torch"]),
              "max_rel_loss_difference": max(difference["lean"], difference["block"])}
    for name, values in times.items():
        record[f"{name}_s"] = statistics.median(values)
    record["torch_over_lean"] = record["torch_s"] / record["lean_s"]
    record["torch_over_block"] = record["torch_s"] / record["block_s"]
    record["lean_over_block"] = record["lean_s"] / record["block_s"]
    return record


def markdown(records):
    lines = ["| dataset (items) | mechanism | autocast | steps each | step s, torch | step s, lean "
             "| step s, block | torch/lean | torch/block | lean/block | largest loss difference (relative) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['dataset']} ({r['items']:,}) | {r['mechanism']} | "
                     f"{'bfloat16' if r['amp'] else 'off'} | {r['steps_each']} | {r['torch_s']:.4f} | "
                     f"{r['lean_s']:.4f} | {r['block_s']:.4f} | {r['torch_over_lean']:.2f}x | "
                     f"{r['torch_over_block']:.2f}x | {r['lean_over_block']:.2f}x | "
                     f"{r['max_rel_loss_difference']:.1e} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty", "ml-1m"])
    parser.add_argument("--mechanisms", nargs="+", default=["none", "simple"])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--amp", action="store_true", help="all under bfloat16 autocast")
    parser.add_argument("--out", help="folder for results.json and table.md")
    args = parser.parse_args(argv)
    records = []
    for dataset in converted(args.datasets):
        for mechanism in args.mechanisms:
            records.append(measure(dataset, mechanism, args.batches, args.repeats, args.amp))
            print(markdown(records[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    write_report(args.out, records, markdown(records))


if __name__ == "__main__":
    main()
