"""Does ``torch.compile`` (CPU inductor) pay for a training run? Issue 15, item 2.

One SASRecAWR model per mechanism, built through ``recbole_awrsr.quick_start.build`` with
the plugin's defaults for the dataset (``train_targets: all``, length groups), is trained
on the first ``--batches`` training batches as RecBole's trainer does a step (zero_grad,
loss, backward, Adam step), eager and with ``model.calculate_loss`` compiled
(``torch.compile(dynamic=True)``, or with ``--static`` fixed shapes and one length group
per batch; ``--targets``: the whole loss, or the encoder's
forward passes only; sizes are symbolic, so the few lengths the length
groups cut batches to do not each compile anew). The two copies start from the same
weights and see the same batches, alternating batch by batch.

Reported per mechanism: the seconds of the first compiled pass over the batches (compile
time included), the median step, eager and compiled, over ``--repeats`` later passes, their
ratio, how many graphs dynamo compiled (recompiles show up here), the largest difference
between the two losses on the first batch, and the epochs a converged run must last
before the compile time is paid back at that ratio, for an epoch of the dataset's size.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py --datasets ml-100k --out benchmarks/results/compile
"""

import argparse
import copy
import json
import statistics
import sys
import time

import torch

from common import first, write_report  # benchmarks/common.py (the script's folder is on sys.path)
from recbole_awrsr import Config
from recbole_awrsr.quick_start import build


def compile_model(model, target, dynamic):
    """Compile ``model`` in place: its whole loss (``loss``) or only its encoder's forward
    passes (``encoder``: the transformer stack, without the Python that cuts batches into
    length groups, which breaks dynamo's graphs)."""
    if target == "loss":
        model.calculate_loss = torch.compile(model.calculate_loss, dynamic=dynamic)
    else:
        encoder = model.trm_encoder
        encoder.forward = torch.compile(encoder.forward, dynamic=dynamic)
        encoder.forward_at = torch.compile(encoder.forward_at, dynamic=dynamic)


def measure(dataset, mechanism, batches, repeats, target, static=False):
    # static: one length group per batch (cut to its longest row, which on these datasets
    # is nearly always n), so that shapes repeat and fixed-shape graphs can be reused
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        "refine_mechanism": mechanism, "save_history": False, "show_progress": False,
        "state": "WARNING", **({"length_groups": 1} if static else {})})
    built = build(config)
    eager = built.model
    compiled = copy.deepcopy(eager)
    counters_before = dict(torch._dynamo.utils.counters["stats"])
    compile_model(compiled, target, dynamic=not static)
    steps_per_epoch = len(built.train_data)
    train_batches = first(built.train_data, batches)
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
                  for name, model in (("eager", eager), ("compiled", compiled))}
    models = {"eager": eager, "compiled": compiled}

    def step(name, batch):
        model, optimizer = models[name], optimizers[name]
        model.train()
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        return loss.item()

    # same weights, same dropout draws: compare the first losses
    torch.manual_seed(0)
    eager_loss = step("eager", train_batches[0])
    torch.manual_seed(0)
    started = time.perf_counter()
    compiled_loss = step("compiled", train_batches[0])
    first_pass = time.perf_counter() - started
    for batch in train_batches[1:]:
        started = time.perf_counter()
        step("compiled", batch)
        first_pass += time.perf_counter() - started
    for batch in train_batches[1:]:
        step("eager", batch)
    times = {"eager": [], "compiled": []}
    for round_ in range(repeats):
        for batch in train_batches:
            for name in (("eager", "compiled") if round_ % 2 == 0 else ("compiled", "eager")):
                started = time.perf_counter()
                step(name, batch)
                times[name].append(time.perf_counter() - started)
    eager_s, compiled_s = statistics.median(times["eager"]), statistics.median(times["compiled"])
    stats = torch._dynamo.utils.counters["stats"]
    graphs = stats.get("unique_graphs", 0) - counters_before.get("unique_graphs", 0)
    saved_per_epoch = (eager_s - compiled_s) * steps_per_epoch
    compile_overhead = first_pass - compiled_s * len(train_batches)
    return {
        "dataset": dataset, "mechanism": mechanism, "target": target + (" static" if static else ""),
        "batches": len(train_batches),
        "steps_per_epoch": steps_per_epoch, "first_compiled_pass_s": first_pass,
        "eager_step_s": eager_s, "compiled_step_s": compiled_s, "ratio": eager_s / compiled_s,
        "graphs_compiled": graphs, "first_loss_eager": eager_loss, "first_loss_compiled": compiled_loss,
        "epochs_to_pay_back": (compile_overhead / saved_per_epoch) if saved_per_epoch > 0 else None,
    }


def markdown(records):
    lines = ["| dataset | mechanism | compiled | eager step s | compiled step s | eager/compiled | "
             "first compiled pass s | graphs | loss eager / compiled | epochs to pay back |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        back = "never" if r["epochs_to_pay_back"] is None else f"{r['epochs_to_pay_back']:.1f}"
        lines.append(f"| {r['dataset']} | {r['mechanism']} | {r['target']} | {r['eager_step_s']:.4f} | "
                     f"{r['compiled_step_s']:.4f} | {r['ratio']:.2f}x | {r['first_compiled_pass_s']:.1f} | "
                     f"{r['graphs_compiled']} | {r['first_loss_eager']:.4f} / {r['first_loss_compiled']:.4f} | "
                     f"{back} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--mechanisms", nargs="+", default=["none", "simple"])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--targets", nargs="+", choices=["loss", "encoder"], default=["loss", "encoder"])
    parser.add_argument("--static", action="store_true",
                        help="length_groups 1 and fixed-shape graphs (dynamic=False) instead of symbolic sizes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    records = []
    for dataset in args.datasets:
        for mechanism in args.mechanisms:
            for target in args.targets:
                records.append(measure(dataset, mechanism, args.batches, args.repeats, target, args.static))
                print(json.dumps(records[-1]), flush=True)
    write_report(args.out, records, markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
