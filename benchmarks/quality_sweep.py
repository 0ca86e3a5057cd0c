"""Validation curves of ``train_targets: all`` under several training settings and seeds.

Question it answers: which optimisation settings (learning rate, rows per batch,
stride) let ``train_targets: all`` reach the recorded stock SASRec's best valid
NDCG@10 on ml-100k (0.0702), and how much of that is seed noise. The model is
RecBole's default SASRec configuration throughout (hidden 64, 2 layers, 2 heads,
inner 256, dropout 0.5, n = 50, CE); only the settings named in ``--grid`` change.

Each run trains from scratch for ``--epochs`` epochs in its own subprocess,
validating after every epoch (RecBole's full-ranking evaluator), and records
(epoch, seconds, valid NDCG@10). ``--parallel`` runs that many at once, each on
one thread: use it to compare curves per epoch, not seconds (train_speed.py
measures time on a quiet machine).

Usage::

    python benchmarks/quality_sweep.py --epochs 40 --parallel 2 \\
        --grid "lr=0.001,0.002 batch=256 stride=10" --seeds 2020 2021 \\
        --out benchmarks/results/quality-sweep

writes ``runs.json`` (every curve), ``sweep.md`` (a table per setting) and ``sweep.png``.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from train_speed import ANCHOR, COMMON, anchor_curve, prepare, train_and_validate  # noqa: E402

# epochs from which a curve is taken to have levelled off (the recorded stock curve
# first reaches its later range, 0.060-0.070, at epoch 6-8)
PLATEAU_FROM = 8

# grid keys -> config keys
KEYS = {"lr": "learning_rate", "batch": "train_batch_size", "stride": "train_stride",
        "mechanism": "refine_mechanism"}


def parse_grid(text):
    """``"lr=0.001,0.002 batch=256"`` -> list of override dicts (the Cartesian product)."""
    axes = []
    for part in text.split():
        key, _, values = part.partition("=")
        if key not in KEYS or not values:
            raise SystemExit(f"--grid: '{part}' is not KEY=V1,V2 with KEY one of {', '.join(KEYS)}")
        axes.append([(KEYS[key], _number(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def worker(spec):
    """One run in this process: the validation curve."""
    import torch

    torch.set_num_threads(spec["threads"])
    overrides = {"refine_mechanism": "none", "train_targets": "all", **spec["overrides"],
                 "seed": spec["seed"]}
    _, train_data, valid_data, model, trainer = prepare(
        {"model": "SASRecAWR", "dataset": "ml-100k", "overrides": overrides,
         "data_path": spec["data_path"]})
    started, curve = time.perf_counter(), []
    for epoch in range(spec["epochs"]):
        ndcg = train_and_validate(trainer, model, train_data, valid_data)
        curve.append([epoch, round(time.perf_counter() - started, 2), ndcg])
    return {"curve": curve}


def run_worker(spec):
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(overrides):
    short = {v: k for k, v in KEYS.items()}
    return " ".join(f"{short[k]}={v}" for k, v in overrides.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="lr=0.001 batch=256 stride=10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[COMMON["seed"]])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--data-path", default="dataset_atomic")
    parser.add_argument("--out", default=str(HERE / "results" / "quality-sweep"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="rewrite OUT/sweep.md and the plot")
    args = parser.parse_args(argv)
    if args.report_only:
        report(json.loads((Path(args.out) / "runs.json").read_text()), Path(args.out))
        return 0
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from tqdm import tqdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "runs.json"
    runs = json.loads(done_file.read_text()) if done_file.exists() else []
    done = {(r["setting"], r["seed"]) for r in runs if "curve" in r}
    threads = 1 if args.parallel > 1 else 2
    specs = [{"overrides": o, "seed": s, "epochs": args.epochs, "threads": threads,
              "data_path": os.path.abspath(args.data_path)}
             for o in parse_grid(args.grid) for s in args.seeds
             if (label(o), s) not in done]
    with ThreadPoolExecutor(args.parallel) as pool, tqdm(total=len(specs), desc="runs") as bar:
        for spec, result in zip(specs, pool.map(run_worker, specs)):
            runs.append({"setting": label(spec["overrides"]), "seed": spec["seed"],
                         "epochs": spec["epochs"], "threads": threads, **result})
            done_file.write_text(json.dumps(runs, indent=1))  # resumable
            bar.update()
            tqdm.write(f"{runs[-1]['setting']} seed {spec['seed']}: "
                       + (f"best {max(p[2] for p in result['curve']):.4f}"
                          if "curve" in result else result["error"]))
    report(runs, out)
    return 0


def report(runs, out):
    """sweep.md: per setting and seed, the best valid NDCG@10 and the first epoch reaching levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import statistics

    target = anchor_curve()[0]
    stock = [p["valid_ndcg10"] for p in json.loads(ANCHOR.read_text())["curve"]]
    levels = (0.0642, 0.0670, target)

    def plateau(values):
        """Mean and standard deviation of valid NDCG@10 from epoch PLATEAU_FROM on."""
        tail = values[PLATEAU_FROM - 1:]
        return f"{statistics.mean(tail):.4f} ± {statistics.stdev(tail):.4f}" if len(tail) > 1 else ""

    lines = [f"| setting | seed | epochs | best valid NDCG@10 (epoch) | plateau: mean ± sd, epochs {PLATEAU_FROM}+ | "
             + " | ".join(f"first epoch >= {level:.4f}" for level in levels) + " |",
             "|---|---|---|---|---|" + "---|" * len(levels)]
    best_stock = max(range(len(stock)), key=stock.__getitem__)
    lines.append(f"| stock SASRec (recorded, `last`) | 2020 | {len(stock)} | {stock[best_stock]:.4f} "
                 f"({best_stock + 1}) | {plateau(stock)} | "
                 + " | ".join(next((str(i + 1) for i, v in enumerate(stock) if v >= level), "never")
                              for level in levels) + " |")
    fig, ax = plt.subplots(figsize=(9, 5))
    for run in runs:
        if "curve" not in run:
            lines.append(f"| {run['setting']} | {run['seed']} | failed: {run.get('error')} | | | | | |")
            continue
        curve = run["curve"]
        best = max(curve, key=lambda p: p[2])
        firsts = [next((str(p[0] + 1) for p in curve if p[2] >= level), "never") for level in levels]
        lines.append(f"| {run['setting']} | {run['seed']} | {len(curve)} | "
                     f"{best[2]:.4f} ({best[0] + 1}) | {plateau([p[2] for p in curve])} | "
                     + " | ".join(firsts) + " |")
        ax.plot([p[0] + 1 for p in curve], [p[2] for p in curve], lw=1,
                label=f"{run['setting']} s{run['seed']}")
    ax.axhline(target, color="black", ls="--", lw=1, label=f"stock best {target}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("valid NDCG@10")
    ax.set_title("ml-100k, SASRecAWR (none unless the label names a mechanism), train_targets: all")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)
    (out / "sweep.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
