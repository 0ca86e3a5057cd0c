"""Training speed of SASRecAWR against RecBole's stock SASRec, side by side in one run.

For each dataset (ml-100k always, ml-1m when its atomic files exist) and each
configuration (stock SASRec; SASRecAWR with every mechanism, ``last`` and ``all``;
SASRecAWR ``none`` with one more layer), a fresh subprocess builds the data and the
model and measures:

* training throughput: rows (samples) and targets per second, from ``--batches``
  timed batches after one warm-up batch (``last``), or from whole epochs (``all``);
* seconds per epoch: measured for ``all``, extrapolated from the throughput for ``last``;
* peak memory: the largest resident-set growth during training, sampled every 5 ms;
* time-to-quality (``all`` only): wall-clock of training plus validation until the
  validation NDCG@10 reaches the best value of the recorded stock SASRec curve
  (``../shared/anchors/recbole-sasrec-ml-100k.json``). The recorded times are scaled
  by the stock epoch time measured in this run.

Usage::

    python benchmarks/train_speed.py --out benchmarks/results

writes ``speed.csv``, ``speed.md`` (the tables of benchmarks/README.md) and ``speed.png``.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANCHOR = HERE.parent.parent / "shared" / "anchors" / "recbole-sasrec-ml-100k.json"

# RecBole's default SASRec configuration (the anchor's), shared by every row
COMMON = {
    "hidden_size": 64, "n_layers": 2, "n_heads": 2, "inner_size": 256,
    "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "loss_type": "CE",
    "train_batch_size": 2048, "learning_rate": 0.001, "seed": 2020,
    "show_progress": False, "state": "WARNING", "valid_metric": "NDCG@10",
}
# time-to-quality runs (train_targets: all) change the optimisation, not the model: 128
# rows a batch (a row holds up to 10 targets), stride 10 and Adam's step 0.004, the best
# of the settings compared by quality_sweep.py (benchmarks/README.md)
QUALITY = {"train_batch_size": 128, "train_stride": 10, "learning_rate": 0.004}
# per mechanism, where a sweep found another step better: `value` levels off at valid
# NDCG@10 0.064 with 0.004 and at 0.067-0.068 with 0.003 (results/quality-sweep-value)
QUALITY_BY_MECHANISM = {"value": {"learning_rate": 0.003}}
# what a time-to-quality run adds to a row's record (it runs in the first round only)
QUALITY_KEYS = ("ttq_s", "ttq_epochs", "best_ndcg10", "curve", "quality_settings")


def configurations(with_quality):
    """(label, model, overrides, measure_quality) for every row of the table."""
    from recbole_awrsr.model.refinement import mechanisms_for  # the mechanisms' one table

    rows = [("SASRec (RecBole)", "SASRec", {}, False)]
    for targets in ("last", "all"):
        for mechanism in mechanisms_for("sasrec"):
            rows.append((f"SASRecAWR {mechanism} {targets}", "SASRecAWR",
                         {"refine_mechanism": mechanism, "train_targets": targets},
                         with_quality and targets == "all"))
        rows.append((f"SASRecAWR none {targets} +1 layer", "SASRecAWR",
                     {"refine_mechanism": "none", "train_targets": targets, "n_layers": 3}, False))
    return rows


class PeakMemory:
    """Largest growth of this process's resident set while the block runs (bytes)."""

    def __enter__(self):
        import psutil

        self._process = psutil.Process()
        self._base = self._process.memory_info().rss
        self.peak = 0
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, self._process.memory_info().rss - self._base)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()


def count_targets(model, batch):
    """Targets a training batch carries: one per row (last) or one per real position (all)."""
    if getattr(model, "train_targets", "last") == "all":
        return int(batch[model.ITEM_SEQ_LEN].sum())
    return len(batch)


def prepare(spec, extra=None):
    """Config, data, model and trainer for one configuration (seeded as RecBole does)."""
    from recbole_awrsr import Config
    from recbole_awrsr.quick_start import build

    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict={
        **COMMON, **spec["overrides"], **(extra or {}), "data_path": spec["data_path"]})
    built = build(config)
    return config, built.train_data, built.valid_data, built.model, built.trainer


def worker(spec):
    """Measure one configuration in this process; returns a dict of results."""
    import torch

    config, train_data, valid_data, model, trainer = prepare(spec)
    assert not torch.is_anomaly_enabled()
    rows_per_epoch = len(train_data.dataset)
    model.train()

    def step(batch):
        trainer.optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        trainer.optimizer.step()

    result = {"rows_per_epoch": rows_per_epoch}
    with PeakMemory() as memory:
        if config["train_targets"] == "all":
            step(next(iter(train_data)))  # warm-up
            started, targets, rows = time.perf_counter(), 0, 0
            for _ in range(spec["all_epochs"]):
                for batch in train_data:
                    step(batch)
                    targets += count_targets(model, batch)
                    rows += len(batch)
            elapsed = time.perf_counter() - started
            result["epoch_s"] = elapsed / spec["all_epochs"]
        else:
            batches = iter(train_data)
            step(next(batches))  # warm-up
            started, targets, rows = time.perf_counter(), 0, 0
            for _, batch in zip(range(spec["batches"]), batches):
                step(batch)
                targets += count_targets(model, batch)
                rows += len(batch)
            elapsed = time.perf_counter() - started
            result["epoch_s"] = rows_per_epoch * elapsed / rows
    result.update(rows_per_s=rows / elapsed, targets_per_s=targets / elapsed,
                  peak_mem_mb=memory.peak / 2**20)
    result["matmul_gflop_epoch"] = matmul_gflop_per_epoch(config, train_data, step, rows_per_epoch)

    if spec["quality"]:
        mechanism = spec["overrides"].get("refine_mechanism")
        settings = {**QUALITY, **QUALITY_BY_MECHANISM.get(mechanism, {})}
        _, train_data, valid_data, model, trainer = prepare(spec, settings)
        result["quality_settings"] = settings
        result.update(time_to_quality(spec, trainer, model, train_data, valid_data))
    return result


def matmul_gflop_per_epoch(config, train_data, step, rows_per_epoch, last_batches=3):
    """Matrix-product GFLOP (forward and backward) of one training epoch, counted by PyTorch.

    ``FlopCounterMode`` adds up the products (mm, bmm, addmm, ...) the steps really run,
    so this is the arithmetic a configuration cannot do without; softmax, dropout and
    other elementwise passes are not counted. ``all``: a whole epoch; ``last``: the
    first ``last_batches`` batches, scaled to the epoch's rows.
    """
    from torch.utils.flop_counter import FlopCounterMode

    rows = 0
    with FlopCounterMode(display=False) as counter:
        for index, batch in enumerate(train_data):
            if config["train_targets"] != "all" and index == last_batches:
                break
            step(batch)
            rows += len(batch)
    return counter.get_total_flops() / 1e9 * rows_per_epoch / rows


def train_and_validate(trainer, model, train_data, valid_data):
    """One training epoch, then RecBole's full-ranking validation: valid NDCG@10."""
    import torch

    model.train()
    for batch in train_data:
        trainer.optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        trainer.optimizer.step()
    with torch.no_grad():
        _, valid = trainer._valid_epoch(valid_data)
    return valid["ndcg@10"]


def time_to_quality(spec, trainer, model, train_data, valid_data):
    """Train until valid NDCG@10 reaches the target; wall-clock of training plus validation."""
    started, best, curve = time.perf_counter(), 0.0, []
    for epoch in range(spec["max_epochs"]):
        ndcg = train_and_validate(trainer, model, train_data, valid_data)
        elapsed = time.perf_counter() - started
        best = max(best, ndcg)
        curve.append([epoch, round(elapsed, 2), ndcg])
        if ndcg >= spec["target"]:
            return {"ttq_s": elapsed, "ttq_epochs": epoch + 1, "best_ndcg10": best, "curve": curve}
        if elapsed > spec["quality_budget"]:
            break
    return {"ttq_s": None, "ttq_epochs": None, "best_ndcg10": best, "curve": curve}


def run_worker(spec):
    """One configuration in a fresh subprocess, so memory and warm caches do not leak across rows."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def anchor_curve():
    data = json.loads(ANCHOR.read_text())
    curve = data["curve"]
    best = max(curve, key=lambda point: point["valid_ndcg10"])
    epoch_s = curve[-1]["t"] / len(curve)  # the recorded mean time per epoch (incl. validation)
    return best["valid_ndcg10"], best["t"], epoch_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    parser.add_argument("--data-path", default="dataset_atomic", help="folder of converted datasets")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per `last` row")
    parser.add_argument("--all-epochs", type=int, default=3, help="timed epochs per `all` row")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over all rows; each row reports its fastest round")
    parser.add_argument("--quality-budget", type=float, default=240.0,
                        help="seconds of training per time-to-quality run before giving up")
    parser.add_argument("--no-quality", action="store_true", help="skip time-to-quality")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run only the configurations whose label contains one of these strings")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the tables and plot from OUT/records.json, measure nothing")
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from tqdm import tqdm

    target, anchor_t, anchor_epoch_s = anchor_curve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_report(json.loads((out / "records.json").read_text()), out, target, anchor_t,
                     anchor_epoch_s)
        return 0
    records = []
    for dataset in args.datasets:
        if dataset != "ml-100k" and not (Path(args.data_path) / dataset / f"{dataset}.inter").is_file():
            print(f"skipping {dataset}: no atomic files under {args.data_path}/{dataset}", file=sys.stderr)
            continue
        rows = configurations(with_quality=not args.no_quality and dataset == "ml-100k")
        if args.only:
            rows = [row for row in rows if row[0] == "SASRec (RecBole)"
                    or any(part in row[0] for part in args.only)]
        # rounds: every row once per round, so slow spells of the shared machine hit
        # all rows alike; each row keeps its fastest round (and the spread)
        measured = {}
        jobs = [(r, row) for r in range(args.repeats) for row in rows]
        for repeat, (label, model, overrides, quality) in tqdm(jobs, desc=dataset):
            spec = {"model": model, "dataset": dataset, "overrides": overrides,
                    "data_path": os.path.abspath(args.data_path), "batches": args.batches,
                    "all_epochs": args.all_epochs, "quality": quality and repeat == 0,
                    "target": target, "max_epochs": 1000, "quality_budget": args.quality_budget}
            result = run_worker(spec)
            tqdm.write(json.dumps({"config": label, "round": repeat,
                                   **{k: v for k, v in result.items() if k != "curve"}}))
            measured.setdefault(label, []).append((overrides, result))
        for label, results in measured.items():
            overrides = results[0][0]
            timed = [r for _, r in results if "epoch_s" in r]
            record = {"dataset": dataset, "config": label,
                      "train_targets": overrides.get("train_targets", "last")}
            if not timed:
                records.append({**record, **results[0][1]})
                continue
            fastest = min(timed, key=lambda r: r["epoch_s"])
            record.update({k: v for k, v in fastest.items()
                           if k not in QUALITY_KEYS})
            record.update({k: v for k, v in results[0][1].items()
                           if k in QUALITY_KEYS})
            record["epoch_s_rounds"] = [round(r["epoch_s"], 2) for r in timed]
            records.append(record)
    (out / "records.json").write_text(json.dumps(records, indent=1))
    write_report(records, out, target, anchor_t, anchor_epoch_s)
    return 0


def write_report(records, out, target, anchor_t, anchor_epoch_s):
    import pandas as pd

    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in records])
    frame.to_csv(out / "speed.csv", index=False)
    (out / "curves.json").write_text(json.dumps(
        {r["config"]: r["curve"] for r in records if r.get("curve")}, indent=1))
    lines = []
    for dataset, part in frame.groupby("dataset", sort=False):
        stock = part[part.config == "SASRec (RecBole)"].epoch_s.iloc[0]
        none_rows = {t: part[part.config == f"SASRecAWR none {t}"] for t in ("last", "all")}

        def vs_none(r, column):
            """``column`` of our row over SASRecAWR none's with the same targets, as +x.x %."""
            base = none_rows[r.train_targets]
            value = r.get(column, float("nan"))
            if not r.config.startswith("SASRecAWR") or base.empty or column not in base \
                    or value != value:
                return ""
            return f"{value / base[column].iloc[0] - 1:+.1%}"

        scale = stock / anchor_epoch_s
        lines += [f"### {dataset}", "",
                  "| configuration | rows/s | targets/s | s/epoch (each round) | speed-up vs stock | cost vs none (same targets) | matmul GFLOP/epoch | its cost vs none | peak MB | best valid NDCG@10 | time-to-quality s (epochs, lr) | vs stock (scaled) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in part.iterrows():
            gflop = r.get("matmul_gflop_epoch", float("nan"))
            gflop_text = "" if gflop != gflop else f"{gflop:.0f}"
            ttq = r.get("ttq_s")
            ttq_text = f"{ttq:.0f}" if isinstance(ttq, float) and ttq == ttq else ""
            ratio = f"{ttq / (anchor_t * scale):.3f}" if ttq_text else ""
            best = r.get("best_ndcg10")
            best_text = f"{best:.4f}" if isinstance(best, float) and best == best else ""
            if best_text and not ttq_text:
                ttq_text = "not reached"
            settings = r.get("quality_settings")
            if ttq_text and isinstance(settings, dict):
                epochs = r.get("ttq_epochs")
                epochs_text = f"{epochs:.0f} ep, " if isinstance(epochs, float) and epochs == epochs else ""
                ttq_text += f" ({epochs_text}lr {settings['learning_rate']})"
            rounds = r.get("epoch_s_rounds")
            spread = (" (" + ", ".join(f"{x:.1f}" for x in rounds) + ")"
                      if isinstance(rounds, list) and len(rounds) > 1 else "")
            lines.append(
                f"| {r.config} | {r.rows_per_s:.0f} | {r.targets_per_s:.0f} | {r.epoch_s:.1f}{spread} | "
                f"{stock / r.epoch_s:.2f}x | {vs_none(r, 'epoch_s')} | "
                f"{gflop_text} | {vs_none(r, 'matmul_gflop_epoch')} | {r.peak_mem_mb:.0f} | {best_text} | {ttq_text} | {ratio} |")
        lines.append("")
        if dataset == "ml-100k":  # the recorded stock curve is ml-100k's
            lines += [f"Stock SASRec epoch measured here: {stock:.1f} s; recorded curve: "
                      f"{anchor_epoch_s:.1f} s/epoch, best valid NDCG@10 {target} after "
                      f"{anchor_t:.0f} s, so stock time-to-quality scaled to this run: "
                      f"{anchor_t * scale:.0f} s.", ""]
    lines += levels_table(records, stock_epoch_scale(frame, anchor_epoch_s))
    (out / "speed.md").write_text("\n".join(lines))
    plot(frame, out)


def stock_epoch_scale(frame, anchor_epoch_s):
    stock = frame[frame.config == "SASRec (RecBole)"].epoch_s
    return stock.iloc[0] / anchor_epoch_s if len(stock) else 1.0


def levels_table(records, scale, levels=(0.0600, 0.0615, 0.0642, 0.0702)):
    """Seconds each curve needs to first reach given valid NDCG@10 levels, stock's scaled."""
    curve = json.loads(ANCHOR.read_text())["curve"]
    runs = [r for r in records if r.get("curve")]
    if not runs:
        return []

    def first(points, level):
        return next((t for t, v in points if v >= level), None)

    stock_points = [(p["t"] * scale, p["valid_ndcg10"]) for p in curve]
    lines = ["Seconds to first reach a validation NDCG@10 level (stock: recorded curve, scaled; "
             "ratio = ours / stock):", "",
             "| level | stock SASRec | " + " | ".join(r["config"] for r in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for level in levels:
        stock_t = first(stock_points, level)
        cells = []
        for r in runs:
            t = first([(e[1], e[2]) for e in r["curve"]], level)
            cells.append("not reached" if t is None else
                         f"{t:.0f}" + (f" ({t / stock_t:.2f})" if stock_t else ""))
        lines.append(f"| {level:.4f} | {'never' if stock_t is None else f'{stock_t:.0f}'} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def plot(frame, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(frame.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = frame[frame.dataset == dataset]
        ax.barh(part.config, part.epoch_s, color=["gray"] + ["tab:blue"] * (len(part) - 1))
        ax.set_xscale("log")
        ax.set_xlabel("seconds per training epoch (log scale)")
        ax.set_title(f"{dataset}: training epoch time")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
