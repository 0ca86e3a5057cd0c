"""Device check on a CUDA GPU: equivalence, training speed of every model, and two full runs.

The rest of the project is built and tested on a 2-core CPU; this script is what a
session with a GPU runs once, in one process, to check that the models work there
and to record how they compare on it (ml-100k, the dataset inside RecBole):

1. ``SASRecAWR`` with ``refine_mechanism: none`` against RecBole's ``SASRec`` on the GPU,
   with the same weights: full-ranking scores of a validation batch and the ``last``
   training loss (eval mode), largest absolute difference.
2. Training speed, configuration by configuration, RecBole's default SASRec model
   (hidden 64, 2 layers, 2 heads, n = 50, CE, batch 2048) as in ``train_speed.py``:
   seconds per epoch counting only the training steps (the epoch's batches are moved to
   the GPU first) and seconds per epoch through RecBole's data loader, and peak GPU memory.
   ``STOSA`` and ``STOSAAWR`` rows use their own defaults (batch 256).
3. ``quick_start.run`` on the GPU for a few epochs (training, validation, reloading the
   best checkpoint, test) with ``STOSAAWR stochastic`` and ``SASRecAWR value``.

Usage (writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out``)::

    python benchmarks/gpu_check.py --out results/gpu

``--device cpu --batches 2 --epochs 1`` runs the same code on a CPU in a minute (for
checking the script itself, not for numbers).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

if not hasattr(np, "float_"):
    # numpy 2 (the GPU machine's image; the package itself pins numpy<2): RecBole 1.2.1's
    # Config aliases np.float to np.float_ and so on, names numpy 2 removed
    np.float_, np.complex_, np.unicode_ = np.float64, np.complex128, np.str_

import recbole_awrsr  # noqa: E402,F401  (first: flush-to-zero before torch's thread pool starts)
import torch  # noqa: E402

from recbole_awrsr.model.refinement import mechanisms_for  # noqa: E402
from train_speed import COMMON  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_config(model, overrides, device, extra=None):
    from recbole_awrsr import Config

    settings = {**COMMON, **overrides, **(extra or {}), "use_gpu": device.type == "cuda"}
    if model.startswith("STOSA"):
        # STOSA keeps its own defaults (batch 256, BPR); only logging is shared
        settings = {key: settings[key] for key in settings
                    if key not in COMMON or key in ("seed", "show_progress", "state", "valid_metric")}
    config = Config(model=model, dataset="ml-100k", config_dict=settings)
    config["device"] = device
    return config


class DataCache:
    """RecBole's data for each kind of training rows, built once and shared by the rows."""

    def __init__(self):
        self._data = {}

    def get(self, config):
        from recbole_awrsr.quick_start import prepare_data

        key = (config["model"].startswith("STOSA"), config["train_targets"])
        if key not in self._data:
            self._data[key] = prepare_data(config)[1:]
        return self._data[key]


def build_model(config, dataset):
    from recbole_awrsr.quick_start import new_model

    return new_model(config, dataset)


def check_equivalence(cache, device):
    """Max |difference| of scores and loss: SASRecAWR none (SASRec's weights) vs RecBole's SASRec."""
    overrides = {"refine_mechanism": "none", "train_targets": "last"}
    stock_config = make_config("SASRec", {"train_targets": "last"}, device)
    ours_config = make_config("SASRecAWR", overrides, device)
    train_data, valid_data, _ = cache.get(ours_config)
    stock = build_model(stock_config, train_data.dataset)
    ours = build_model(ours_config, train_data.dataset)
    ours.load_state_dict(stock.state_dict())
    stock.eval(), ours.eval()
    batch = next(iter(valid_data))[0].to(device)
    train_batch = next(iter(train_data)).to(device)
    with torch.no_grad():
        scores = (stock.full_sort_predict(batch) - ours.full_sort_predict(batch)).abs().max()
        loss = (stock.calculate_loss(train_batch) - ours.calculate_loss(train_batch)).abs()
    return {"max_abs_score_diff": float(scores), "abs_loss_diff": float(loss),
            "rows_compared": len(batch)}


def speed_rows():
    """(label, model, overrides) of every speed row."""
    rows = [("SASRec (RecBole)", "SASRec", {"train_targets": "last"})]
    for targets in ("last", "all"):
        for mechanism in mechanisms_for("sasrec"):
            rows.append((f"SASRecAWR {mechanism} {targets}", "SASRecAWR",
                         {"refine_mechanism": mechanism, "train_targets": targets}))
        rows.append((f"SASRecAWR none {targets} +1 layer", "SASRecAWR",
                     {"refine_mechanism": "none", "train_targets": targets, "n_layers": 3}))
    for mechanism in ("none", "stochastic"):
        rows.append((f"STOSAAWR {mechanism} all", "STOSAAWR",
                     {"refine_mechanism": mechanism, "train_targets": "all"}))
    rows.append(("STOSA all", "STOSA", {"train_targets": "all"}))
    return rows


def measure_speed(cache, label, model_name, overrides, device, max_batches, epochs, extra=None):
    """Training seconds per epoch (steps only, and through the loader) and peak memory."""
    config = make_config(model_name, overrides, device, extra if model_name != "SASRec" else None)
    train_data, _, _ = cache.get(config)
    model = build_model(config, train_data.dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    model.train()

    def step(batch):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def loader_batches():
        for index, batch in enumerate(train_data):
            if max_batches and index >= max_batches:
                return
            yield batch

    on_device = [batch.to(device) for batch in loader_batches()]
    losses = [float(step(on_device[0]))]  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        for batch in on_device:
            loss = step(batch)
        losses.append(float(loss))
    sync(device)
    steps_s = (time.perf_counter() - started) / epochs

    started = time.perf_counter()
    for batch in loader_batches():
        step(batch.to(device))
    sync(device)
    loader_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"label": label, "batches": len(on_device), "steps_s_per_epoch": steps_s,
            "loader_s_per_epoch": loader_s, "peak_gpu_mb": peak,
            "first_loss": losses[0], "last_loss": losses[-1]}


def full_run(model_name, overrides, device, epochs):
    """quick_start.run on the device: best validation and test NDCG@10 / Recall@10."""
    from recbole_awrsr.quick_start import run

    started = time.perf_counter()
    result, built = run(model=model_name, dataset="ml-100k", config_dict={
        **overrides, "epochs": epochs, "use_gpu": device.type == "cuda", "show_progress": False,
        "state": "WARNING", "checkpoint_dir": tempfile.mkdtemp(prefix="gpu_check_")})
    return {"model": model_name, **overrides, "epochs": epochs,
            "wall_s": time.perf_counter() - started,
            "device": str(next(built.model.parameters()).device),
            "valid": {key: float(value) for key, value in result["best_valid_result"].items()},
            "test": {key: float(value) for key, value in result["test_result"].items()}}


def report(results):
    lines = [f"Device: {results['device_name']}; torch {results['torch']}; our rows with "
             f"{results['set'] or 'their defaults'}.", "",
             "Equivalence, SASRecAWR none vs RecBole SASRec (same weights, on the device): "
             f"max |score difference| {results['equivalence']['max_abs_score_diff']:.2e} over "
             f"{results['equivalence']['rows_compared']} rows, |loss difference| "
             f"{results['equivalence']['abs_loss_diff']:.2e}.", "",
             "| configuration | batches | s/epoch, steps only | vs stock | cost vs none (same targets) "
             "| s/epoch through RecBole's loader | peak GPU MB | loss first -> last |",
             "|---|---|---|---|---|---|---|---|"]
    rows = {row["label"]: row for row in results["speed"]}
    stock = rows["SASRec (RecBole)"]["steps_s_per_epoch"]
    for row in results["speed"]:
        label = row["label"]
        base = None
        if label.startswith("SASRecAWR"):
            base = rows[f"SASRecAWR none {'last' if ' last' in label else 'all'}"]
        elif label.startswith("STOSA"):
            base = rows["STOSA all"]
        cost = f"{row['steps_s_per_epoch'] / base['steps_s_per_epoch'] - 1:+.1%}" if base else ""
        speedup = (f"{stock / row['steps_s_per_epoch']:.2f}x" if label.startswith("SAS") else "")
        peak = f"{row['peak_gpu_mb']:.0f}" if row["peak_gpu_mb"] is not None else ""
        lines.append(f"| {label} | {row['batches']} | {row['steps_s_per_epoch']:.3f} | {speedup} | {cost} "
                     f"| {row['loader_s_per_epoch']:.2f} | {peak} "
                     f"| {row['first_loss']:.3f} -> {row['last_loss']:.3f} |")
    lines += ["", "| full run | epochs | wall s | device | best valid NDCG@10 | test NDCG@10 | test Recall@10 |",
              "|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        name = f"{run['model']} {run.get('refine_mechanism', '')}".strip()
        lines.append(f"| {name} | {run['epochs']} | {run['wall_s']:.0f} | {run['device']} "
                     f"| {run['valid']['ndcg@10']:.4f} | {run['test']['ndcg@10']:.4f} "
                     f"| {run['test']['recall@10']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, default=0, help="batches per epoch (0: all)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per speed row")
    parser.add_argument("--run-epochs", type=int, default=10, help="epochs of each full run")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config values for every row of our models (e.g. length_groups=1)")
    parser.add_argument("--skip-runs", action="store_true", help="no full runs")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    extra = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py: no CUDA device is visible (use --device cpu to try the script)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    cache = DataCache()
    results = {"torch": torch.__version__, "set": extra,
               "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "equivalence": check_equivalence(cache, device), "speed": [], "runs": []}
    print(json.dumps(results["equivalence"]), flush=True)
    for label, model_name, overrides in speed_rows():
        row = measure_speed(cache, label, model_name, overrides, device, args.batches, args.epochs,
                            extra)
        results["speed"].append(row)
        print(json.dumps(row), flush=True)
    for model_name, overrides in () if args.skip_runs else (
            ("STOSAAWR", {"refine_mechanism": "stochastic"}), ("SASRecAWR", {"refine_mechanism": "value"})):
        results["runs"].append(full_run(model_name, overrides, device, args.run_epochs))
        print(json.dumps(results["runs"][-1]), flush=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    (out / "gpu_check.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
