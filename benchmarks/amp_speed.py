"""float32 against bfloat16 autocast (``enable_amp``), per training step and per evaluation batch.

For each dataset (ml-100k, and ml-1m when ``dataset_atomic/ml-1m/ml-1m.inter`` exists),
each SASRecAWR mechanism (``--mechanisms``, default none and simple) and each batch
setting (``table``: the speed table's rows, 2048 rows a batch, stride n/2; ``ttq``: the
time-to-quality runs', 128 rows, stride 10; both ``train_targets: all``), one model is
built through ``recbole_awrsr.quick_start.build`` and timed in this process:

* a training step as RecBole's trainer runs it (zero_grad, the loss under
  ``torch.autocast(enabled=amp)``, backward, Adam step) on each of the first
  ``--batches`` training batches;
* a full-sort evaluation batch as the plugin's trainer scores it
  (``_full_sort_batch_eval``: the model's scores of every item, history masked) on each
  of the first ``--batches`` validation batches, without RecBole's metric computation.

float32 and bfloat16 alternate batch by batch, ``--repeats`` times, after one untimed
round; the table gives the medians and the ratio float32 / bfloat16 (above 1: bfloat16 is
faster). A one-matrix-product row (the CE scoring of one ``ttq`` ML-1M batch,
6400 x 64 @ 64 x 3416, forward and backward) reproduces the issue's measurement.

``--eval-check EPOCHS`` instead trains SASRecAWR ``simple`` (``ttq`` setting, float32) for
that many epochs on the first dataset and evaluates the validation set with the same
weights twice, scoring in float32 and under bfloat16 autocast: the metrics, the
whole-evaluation time, and the share of users with two equal scores among their top 11
(bfloat16 keeps 8 significant bits, so scores near 8 are 2^-4 apart).

``--epochs ROUNDS`` instead times whole training epochs through RecBole's loop
(``trainer._train_epoch``: loading, autocast step, bookkeeping) of SASRecAWR with the
plugin's defaults (the default run's settings), ``enable_amp`` off and on alternately,
ROUNDS each after one untimed epoch of each.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py --out benchmarks/results/amp
    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py --datasets ml-100k --epochs 3
    OMP_NUM_THREADS=1 python benchmarks/amp_speed.py --datasets ml-100k --eval-check 15
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import first  # noqa: E402
from train_speed import COMMON, QUALITY  # noqa: E402  (the speed table's settings)

from recbole_awrsr import Config  # noqa: E402
from recbole_awrsr.quick_start import build  # noqa: E402

SETTINGS = {
    "table": {"train_targets": "all"},
    "ttq": {"train_targets": "all", **QUALITY},
}


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(dataset, mechanism, setting, batches, repeats):
    """Median seconds per training step and per evaluation batch, float32 and bfloat16."""
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        **COMMON, **SETTINGS[setting], "refine_mechanism": mechanism, "enable_amp": False,
        "save_history": False})
    built = build(config)
    model, trainer = built.model, built.trainer
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    train_batches = first(built.train_data, batches)
    eval_batches = first(built.valid_data, batches)
    trainer.tot_item_num = built.valid_data._dataset.item_num

    def step(batch, amp):
        model.train()
        optimizer.zero_grad()
        with torch.autocast(device_type="cpu", enabled=amp):
            loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()

    def score(batch, amp):
        model.eval()
        trainer.enable_amp = amp
        with torch.no_grad():
            trainer._full_sort_batch_eval(batch)

    times = {(kind, amp): [] for kind in ("train", "eval") for amp in (False, True)}
    for round_ in range(repeats + 1):  # round 0 warms up (allocator, oneDNN kernels)
        for kind, batch_list, run in (("train", train_batches, step), ("eval", eval_batches, score)):
            for batch in batch_list:
                for amp in ((False, True) if round_ % 2 == 0 else (True, False)):
                    seconds = timed(lambda: run(batch, amp))
                    if round_:
                        times[(kind, amp)].append(seconds)
    record = {"dataset": dataset, "mechanism": mechanism, "setting": setting,
              "train_rows": len(train_batches[0]), "eval_users": len(eval_batches[0][0])}
    for (kind, amp), values in times.items():
        record[f"{kind}_{'bf16' if amp else 'fp32'}_s"] = statistics.median(values)
        record[f"{kind}_{'bf16' if amp else 'fp32'}_n"] = len(values)
    for kind in ("train", "eval"):
        record[f"{kind}_ratio"] = record[f"{kind}_fp32_s"] / record[f"{kind}_bf16_s"]
    return record


def matmul_row(repeats):
    """The issue's single product: (6400, 64) @ (64, 3416), forward and backward."""
    hidden = torch.randn(6400, 64, requires_grad=True)
    items = torch.randn(3416, 64, requires_grad=True)

    def run(amp):
        with torch.autocast(device_type="cpu", enabled=amp):
            logits = hidden @ items.t()
        logits.float().sum().backward()

    values = {False: [], True: []}
    for round_ in range(repeats * 4 + 1):
        for amp in (False, True):
            seconds = timed(lambda: run(amp))
            if round_:
                values[amp].append(seconds)
    fp32, bf16 = statistics.median(values[False]), statistics.median(values[True])
    return {"fp32_s": fp32, "bf16_s": bf16, "ratio": fp32 / bf16}


def eval_check(dataset, epochs):
    """Validation metrics and ties with float32 and bfloat16 scoring of the same trained weights."""
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        **COMMON, **SETTINGS["ttq"], "refine_mechanism": "simple", "epochs": epochs,
        "save_history": False})
    built = build(config)
    trainer = built.trainer
    trainer.fit(built.train_data, None, saved=False, show_progress=False)
    batch = next(iter(built.valid_data))
    result = {}
    for amp in (False, True):
        trainer.enable_amp = amp
        seconds = timed(lambda: result.__setitem__(amp, dict(
            trainer.evaluate(built.valid_data, load_best_model=False))))
        with torch.no_grad():
            _, scores, _, _ = trainer._full_sort_batch_eval(batch)
        top = scores.topk(11, dim=-1).values
        result[amp].update(eval_s=seconds, top_score=top[:, 0].max().item(),
                           users_with_tie_in_top11=(top[:, :-1] == top[:, 1:]).any(-1).float().mean().item())
    return {"dataset": dataset, "epochs": epochs, "fp32": result[False], "bf16": result[True]}


def epoch_times(dataset, mechanism, rounds):
    """Median seconds of a whole training epoch with the plugin's defaults, amp off and on."""
    config = Config(model="SASRecAWR", dataset=dataset, config_dict={
        "refine_mechanism": mechanism, "save_history": False, "show_progress": False,
        "state": "WARNING"})
    built = build(config)
    trainer = built.trainer
    times = {False: [], True: []}
    for round_ in range(rounds + 1):
        for amp in ((False, True) if round_ % 2 == 0 else (True, False)):
            trainer.enable_amp = amp
            seconds = timed(lambda: trainer._train_epoch(built.train_data, round_))
            if round_:
                times[amp].append(seconds)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    return {"dataset": dataset, "mechanism": mechanism, "fp32_epochs_s": times[False],
            "bf16_epochs_s": times[True], "ratio": fp32 / bf16,
            "train_batch_size": config["train_batch_size"]}


def markdown(records, product):
    lines = [
        "| dataset | mechanism | batches | train step fp32 s | bf16 s | fp32/bf16 | "
        "eval batch fp32 s | bf16 s | fp32/bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['dataset']} | {r['mechanism']} | {r['setting']} ({r['train_rows']} rows; "
            f"{r['eval_users']} users) | {r['train_fp32_s']:.3f} | {r['train_bf16_s']:.3f} | "
            f"{r['train_ratio']:.2f}x | {r['eval_fp32_s']:.3f} | {r['eval_bf16_s']:.3f} | "
            f"{r['eval_ratio']:.2f}x |")
    lines.append("")
    lines.append(f"One product (6400 x 64 @ 64 x 3416, forward and backward): "
                 f"{product['fp32_s'] * 1e3:.1f} ms fp32, {product['bf16_s'] * 1e3:.1f} ms bf16, "
                 f"{product['ratio']:.2f}x.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="default: ml-100k, and ml-1m when its atomic file exists")
    parser.add_argument("--mechanisms", nargs="+", default=["none", "simple"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batches", type=int, default=3, help="training / evaluation batches timed")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds over those batches")
    parser.add_argument("--out", type=Path, default=None, help="folder for amp.json and amp.md")
    parser.add_argument("--epochs", type=int, default=None, metavar="ROUNDS",
                        help="time whole epochs with the defaults instead, ROUNDS per setting")
    parser.add_argument("--eval-check", type=int, default=None, metavar="EPOCHS",
                        help="train EPOCHS epochs, then compare float32 and bfloat16 evaluation")
    args = parser.parse_args(argv)
    datasets = args.datasets or ["ml-100k"] + (
        ["ml-1m"] if Path("dataset_atomic/ml-1m/ml-1m.inter").exists() else [])
    if args.epochs:
        for dataset in datasets:
            for mechanism in args.mechanisms:
                print(json.dumps(epoch_times(dataset, mechanism, args.epochs)), flush=True)
        return
    if args.eval_check:
        print(json.dumps(eval_check(datasets[0], args.eval_check), indent=1))
        return

    product = matmul_row(args.repeats)
    records = []
    for dataset in datasets:
        for setting in args.settings:
            for mechanism in args.mechanisms:
                records.append(measure(dataset, mechanism, setting, args.batches, args.repeats))
                print(json.dumps(records[-1]), flush=True)
    table = markdown(records, product)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n\n{table}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "amp.json").write_text(json.dumps({"records": records, "product": product,
                                                       "threads": torch.get_num_threads(),
                                                       "torch": torch.__version__}, indent=1))
        (args.out / "amp.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
