"""Drop-in comparison: each backbone with and without every refinement mechanism, same settings.

``python -m recbole_awrsr.compare --datasets ml-1m beauty --seeds 1 2 3 [--config tuned.yaml]
[--models SASRecAWR STOSAAWR] [--baselines SASRec GRU4Rec] [--layers 1 2 3 4] --out results/``
(also ``recbole-awrsr compare ...``). One cell is one (dataset, model, mechanism, layers,
seed) run; every cell gets the same config files and ``--key=value`` keys, only the
mechanism, ``n_layers`` and ``seed`` vary. Finished cells are appended to
``results.csv`` as they end, so an interrupted comparison resumes where it stopped; the
cell that was training when it stopped continues from its last finished epoch.
``tables.md`` holds tables shaped like the paper's Table 2 (Recall@1, Recall@5, NDCG@5
per dataset, mean over seeds, change against the same backbone's ``none``, paired
t-test over seeds) and Table 3 (NDCG@5 by number of layers); ``summary.csv`` has the
same numbers unrounded. Each run's per-user test metrics go to ``per_user/`` and its
per-epoch training history (loss, validation metrics, attention sharpness) to
``history/``, plotted in ``curves.png``. Several comparisons may share one ``--out``
folder (say one per core): a row is added under a lock on the results file, and a cell
is trained by one process at a time (:func:`claimed`): the others pass it by, so processes
given the same list of cells share it out between them as they go.
"""

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
from recbole.evaluator.metrics import NDCG, Recall
from tqdm import tqdm

import recbole_awrsr
from recbole_awrsr import cli
from recbole_awrsr import model as plugin_models
from recbole_awrsr import parking
from recbole_awrsr.cli import config_pairs
from recbole_awrsr.config import Config, _parse_value
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.files import save_figure, write_text
from recbole_awrsr.history import history_path
from recbole_awrsr.model.refinement import MECHANISMS
from recbole_awrsr.quick_start import run
from recbole_awrsr.tables import (
    BASE,
    NO_MECHANISM,
    PER_USER_METRICS,
    REFINE_PREFIX,
    curves_figure,
    model_mechanisms,
    report_sections,
    row_label,
    sharpness_figure,
    tables_text,
)

KEYS = ["dataset", "model", "mechanism", "layers", "variant", "seed"]


@dataclass(frozen=True)
class Cell:
    """One run of the comparison. ``layers`` is ``None`` when the config decides.

    ``variant`` names the shared configuration the cell runs under (see :func:`variant_of`).
    """

    dataset: str
    model: str
    mechanism: str
    layers: object
    seed: int
    variant: str = ""


def variant_of(keys, config_files, mechanism):
    """The shared configuration of a cell as text: its ``--key=value`` keys, sorted, and
    a digest of the config files' contents.

    A cell's results are only reused for the same variant, so a rerun with other keys
    or edited config files runs anew instead of mixing stale rows in. Keys that only
    a refinement reads (``refine_*``) do not enter the variant of ``none`` and of
    RecBole baselines, which all refinement variants then share as their base.
    """

    parts = [f"{key}={keys[key]}" for key in sorted(keys)
             if mechanism not in (BASE, NO_MECHANISM) or not key.startswith(REFINE_PREFIX)]
    if config_files:
        digest = hashlib.sha256()
        for path in config_files:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        parts.append(f"config={digest.hexdigest()[:10]}")
    return " ".join(parts)


def mechanisms_for(model, only=None):
    """The refinement mechanisms ``model`` can use, ``none`` first; RecBole models have none.

    ``only`` restricts them (``none`` is always kept: it is what the others are compared with).
    """
    names = model_mechanisms(model)
    if only and names != [NO_MECHANISM]:
        unknown = sorted(set(only) - set(MECHANISMS))
        if unknown:
            raise ConfigurationError(f"--mechanisms: unknown {', '.join(unknown)}; "
                                     f"use some of {', '.join(MECHANISMS)}")
        names = [name for name in names if name == BASE or name in only]
    return names


def plan(datasets, models, baselines, layers, seeds, only_mechanisms=None):
    """Every cell, in the order they run: dataset, layers, baselines, then each backbone."""
    cells = []
    for dataset in datasets:
        for depth in layers or [None]:
            for model in list(baselines) + list(models):
                for mechanism in mechanisms_for(model, only_mechanisms):
                    for seed in seeds:
                        cells.append(Cell(dataset, model, mechanism, depth, seed))
    return cells


def cell_config(cell, keys, out):
    """The config dict of one cell: the shared keys, then what the cell varies."""
    if cell.mechanism in (BASE, NO_MECHANISM):  # as in its variant: no refinement keys
        keys = {key: value for key, value in keys.items() if not key.startswith(REFINE_PREFIX)}
    config = {"show_progress": False, **keys, "seed": cell.seed,
              "checkpoint_dir": os.path.join(out, "checkpoints")}
    if cell.mechanism != NO_MECHANISM:
        config["refine_mechanism"] = cell.mechanism
    if cell.layers is not None:
        config["n_layers"] = cell.layers
    return config


def cell_key(cell, layers):
    """The results-table key of a cell, as strings (how it reads back from the CSV)."""
    return (cell.dataset, cell.model, cell.mechanism, str(layers), cell.variant, str(cell.seed))


def configured_layers(cell, config_files, keys, out):
    """``n_layers`` the cell will train with ("-" for models without that key).

    Resolved before training so that a resumed run can tell finished cells apart
    when ``--layers`` is not given and the config files decide.
    """
    if cell.layers is not None:
        return cell.layers

    config = Config(cell.model, cell.dataset, config_files, cell_config(cell, keys, out))
    value = config["n_layers"]
    return NO_MECHANISM if value is None else value


def run_cell(cell, config_files, keys, out, layers=None):
    """Train and test one cell; returns its results row (validation and test metrics).

    The cell trains resumably into :func:`checkpoint_path`: a cell whose process was
    killed continues from its last finished epoch when the comparison runs again, with
    the numbers an uninterrupted run gives. ``seconds`` counts every process's training
    time; ``resumed_epoch`` says where the last process took over (empty: it ran through).
    A run parked in ``out/parked/`` (:mod:`~recbole_awrsr.parking`: from another machine)
    continues from there where it is further on than the checkpoints folder.
    """
    began = time.monotonic()
    checkpoint_file = checkpoint_path(out, cell, layers)
    epoch = parking.unpark(checkpoint_file)
    if epoch is not None:
        print(f"unparked {parking.parked_path(checkpoint_file)}: resuming after epoch {epoch}",
              file=sys.stderr)
    result, built = run(cell.model, cell.dataset, config_files, cell_config(cell, keys, out),
                        saved=True, checkpoint_file=checkpoint_file)
    trainer = built.trainer
    seconds = time.monotonic() - began + trainer.elapsed_before
    # checkpoints of finished cells are not needed again; the CSV holds the numbers
    if os.path.isfile(trainer.saved_model_file):
        os.remove(trainer.saved_model_file)
    row = {"best_valid_score": float(result["best_valid_score"]),
           "epochs": trainer.epochs_trained, "best_epoch": trainer.best_epoch,
           "resumed_epoch": trainer.resumed_epoch}
    row.update({f"valid_{k}": float(v) for k, v in (result["best_valid_result"] or {}).items()})
    row.update({f"test_{k}": float(v) for k, v in result["test_result"].items()})
    # the best model's last layer on validation sequences (the test split is not looked at)
    row.update({f"valid_{k}": v for k, v in trainer.validation_sharpness(
        built.valid_data, rows=VALID_SHARPNESS_ROWS).items()})
    row["seconds"] = round(seconds, 1)
    row["code"] = code_version()
    row["machine"] = machine_name(built.config["device"])
    row["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    write_per_user(per_user_path(out, cell, layers), built)
    history = history_path(trainer.saved_model_file)
    if os.path.isfile(history):  # the checkpoints folder is not kept; the grid's history/ is
        with open(history, encoding="utf-8") as handle:
            write_text(kept_history_path(out, cell, layers), handle.read())
    return row


def code_version(package=None):
    """The code a row was trained with: the git commit of the package's checkout (with
    ``+changes`` when the package's files differ from it), else the package version.

    ``package``: the package folder (default: this package's), which counts as a
    checkout only when git tracks its files (not a virtual environment inside some repository).
    """
    package = package or os.path.dirname(os.path.abspath(recbole_awrsr.__file__))

    def git(*args):
        return subprocess.run(["git", "-C", os.fspath(package), *args], capture_output=True,
                              text=True, timeout=30)

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode == 0:
            commit = git("rev-parse", "--short", "HEAD").stdout.strip()
            changed = git("diff", "--quiet", "HEAD", "--", ".").returncode != 0
            return commit + ("+changes" if changed else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"recbole-awrsr {recbole_awrsr.__version__}"


def machine_name(device="cpu", cpuinfo="/proc/cpuinfo"):
    """What a row was trained on: the GPU's name for a CUDA device, else the CPU's model
    name (Linux's ``cpuinfo``; elsewhere what :mod:`platform` says).

    The same seed follows another path on another processor (other kernels, other float
    rounding), so rows from different machines are replicates, not reruns.
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


#: validation sequences a finished cell's sharpness is measured on
VALID_SHARPNESS_ROWS = 2048


def cell_stem(cell, layers):
    """A cell's file name stem, the same in every process: ``layers`` is the cell's resolved
    ``n_layers`` (as in its results row), the tag a digest of its variant."""
    tag = hashlib.sha256(cell.variant.encode()).hexdigest()[:10]
    return f"{cell.dataset}_{cell.model}_{cell.mechanism}_L{layers}_s{cell.seed}_{tag}"


def per_user_path(out, cell, layers):
    """Where a cell's per-user test metrics go: one small CSV per cell."""
    return os.path.join(out, "per_user", cell_stem(cell, layers) + ".csv")


def checkpoint_path(out, cell, layers):
    """A cell's checkpoint; its resumable state and training history sit beside it."""
    return os.path.join(out, "checkpoints", cell_stem(cell, layers) + ".pth")


def claim_path(out, cell, layers):
    """The file whose lock says that a process is training the cell (empty; beside the checkpoint)."""
    return os.path.join(out, "checkpoints", cell_stem(cell, layers) + ".lock")


@contextlib.contextmanager
def claimed(out, cell, layers):
    """Claim the cell for this process while the block runs: yields True where this
    process holds the claim, False where another process holds it now.

    The claim is an exclusive ``flock`` on :func:`claim_path`, taken without waiting. The
    kernel drops it when its holder exits, killed or not, so a claim never outlives its
    process and a killed run's cell is free for the next one to resume. The lock files
    stay (removing one while another process opens it would let two processes hold the
    "same" claim); they are empty and sit in the ignored checkpoints folder.
    """
    path = claim_path(out, cell, layers)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:  # closing it, as the block ends, drops the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ours = True
        except BlockingIOError:
            ours = False
        yield ours


def kept_history_path(out, cell, layers):
    """Where a finished cell's training history is kept: one CSV per cell in ``history/``
    (the trainer's copy, beside the checkpoint, goes with the ignored checkpoints folder)."""
    return os.path.join(out, "history", cell_stem(cell, layers) + ".csv")


def record_cell(record):
    """The cell of a results row, as read back from the CSV (``layers`` as text)."""
    return Cell(record["dataset"], record["model"], record["mechanism"], record["layers"],
                int(record["seed"]), record["variant"])


def per_user_reader(out):
    """``record -> path`` of a results row's per-user file (what the tables' paired test reads)."""
    return lambda record: per_user_path(out, record_cell(record), record["layers"])


def history_reader(out):
    """``record -> path`` of a results row's kept training history (what the curves plot)."""
    return lambda record: kept_history_path(out, record_cell(record), record["layers"])


def write_per_user(path, built):
    """Each test user's metrics of :data:`PER_USER_METRICS`, from RecBole's own evaluator.

    Read from the data RecBole's evaluator collected in the last ``evaluate`` (the test
    split): the top-k positions of each user's positive, turned into per-user values by
    RecBole's metric classes. Rows are the test loader's users, in its order.
    """

    topk = built.trainer.last_eval_struct["rec.topk"]
    pos_index, pos_len = topk[:, :-1].numpy().astype(bool), topk[:, -1].numpy()
    loader = built.test_data
    users = getattr(loader, "uid_list", None)  # general models; sequential: one row per user
    if users is None:
        users = loader.dataset.inter_feat[loader.dataset.uid_field]
    columns = {"user": np.asarray(users)}
    for metric in PER_USER_METRICS:
        name, k = metric.split("@")
        info = {"ndcg": NDCG, "recall": Recall}[name](built.config).metric_info(pos_index, pos_len)
        columns[metric] = info[:, int(k) - 1]
    write_text(path, pd.DataFrame(columns).to_csv(index=False))


def read_results(path):
    """The results CSV as a DataFrame (empty, with the key columns, if there is none yet)."""
    if not os.path.isfile(path):
        return pd.DataFrame(columns=KEYS)
    frame = pd.read_csv(path, dtype={key: str for key in KEYS}, keep_default_na=False,
                        na_values=[""])
    # rows written before variants existed, and the empty variant, read back as ""
    frame["variant"] = frame["variant"].fillna("") if "variant" in frame else ""
    return frame


def append_result(path, row):
    """Add one finished cell's row to the results CSV (rewritten whole, atomically)."""
    # two comparisons may share one folder (say, one per core): the lock keeps one
    # from rewriting the file between the other's read and write
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        frame = read_results(path)
        frame = pd.concat([frame, pd.DataFrame([row]).astype({key: str for key in KEYS})],
                          ignore_index=True)
        write_text(path, frame.to_csv(index=False))
    return frame


def finished_keys(frame):
    """Keys of the cells the results already hold."""
    return {tuple(str(value) for value in values) for values in frame[KEYS].itertuples(index=False)}


def parse_args(argv):
    """Options of the comparison, and the ``--key=value`` config keys shared by every cell."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_awrsr.compare",
        description="Every backbone with refine_mechanism none and each mechanism (and RecBole "
        "baselines) under identical settings; any further --key=value is a config key for all runs.",
        allow_abbrev=False,  # --seed=7 must not be read as --seeds
    )
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020])
    parser.add_argument("--config", nargs="+", default=[],
                        help="YAML config files for every cell (e.g. tune's best.yaml)")
    refined = plugin_models.refined_models()
    parser.add_argument("--models", nargs="+", default=refined,
                        help="plugin backbones (default: SASRecAWR STOSAAWR)")
    parser.add_argument("--baselines", nargs="*", default=[], help="RecBole models, e.g. SASRec GRU4Rec")
    parser.add_argument("--mechanisms", nargs="+", default=None,
                        help="only these mechanisms (none is always run)")
    parser.add_argument("--skip-none", action="store_true",
                        help="leave out the none cells unless --mechanisms names none: to split one "
                        "grid over processes that run side by side, each cell in exactly one")
    parser.add_argument("--layers", nargs="+", type=int, default=None,
                        help="n_layers values (default: what the config says)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--out", default="results", help="output folder (default results)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite tables.md and summary.csv from results.csv")
    args, extra = parser.parse_known_args(argv)
    keys = config_pairs(parser, extra)
    varied = {"seed": "--seeds", "refine_mechanism": "--models/--mechanisms"}
    if args.layers:
        varied["n_layers"] = "--layers"
    for key, option in varied.items():
        if key in keys:
            parser.error(f"--{key} is set per run by {option}; drop --{key}=...")
    for model in args.models:
        if model not in refined:
            parser.error(f"--models takes the plugin's refined models ({', '.join(refined)}); "
                         f"put RecBole models such as {model} under --baselines")
    return args, keys


def compare(args, keys):
    """Run every unfinished cell, then write the tables; returns (results frame, failures)."""
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    results_path = os.path.join(out, "results.csv")
    config_files = [os.path.abspath(path) for path in args.config]
    for path in config_files:
        if not os.path.isfile(path):
            raise ConfigurationError(f"--config: file not found: {path}")
    keys = {key: _parse_value(value) if isinstance(value, str) else value
            for key, value in keys.items()}
    cells = [replace(cell, variant=variant_of(keys, config_files, cell.mechanism))
             for cell in plan(args.datasets, args.models, args.baselines, args.layers, args.seeds,
                              args.mechanisms)]
    if args.skip_none and BASE not in (args.mechanisms or []):
        cells = [cell for cell in cells if cell.mechanism != BASE]
    frame = read_results(results_path)
    if args.report_only:
        cells = []
    done = finished_keys(frame)
    todo = []
    for cell in cells:
        layers = configured_layers(cell, config_files, keys, out)
        if cell_key(cell, layers) not in done:
            todo.append((cell, layers))
        else:  # its row may have come from elsewhere (another machine, a device)
            parking.finished(checkpoint_path(out, cell, layers))
    print(f"{len(cells)} cells, {len(cells) - len(todo)} already in {results_path}, "
          f"{len(todo)} to run", file=sys.stderr)
    failures = []
    progress = tqdm(todo, desc="compare", unit="run", file=sys.stderr)
    for cell, layers in progress:
        label = f"{cell.dataset} {row_label(cell.model, cell.mechanism)} L={layers} seed={cell.seed}"
        progress.set_postfix_str(label)
        with claimed(out, cell, layers) as ours:
            if not ours:
                progress.write(f"skipped: {label}: another process is training it "
                               f"(it holds {claim_path(out, cell, layers)})")
                continue
            # it may have ended in another process since this one read the results
            if cell_key(cell, layers) in finished_keys(read_results(results_path)):
                progress.write(f"skipped: {label}: another process finished it meanwhile")
                continue
            try:
                row = run_cell(cell, config_files, keys, out, layers)
            except Exception as error:  # one broken cell must not stop the others
                failures.append({**asdict(cell), "layers": layers,
                                 "error": f"{type(error).__name__}: {error}",
                                 "traceback": traceback.format_exc()})
                progress.write(f"failed: {cell}: {type(error).__name__}: {error}")
                continue
            append_result(results_path, {**asdict(cell), "layers": layers, **row})
            parking.finished(checkpoint_path(out, cell, layers))
    progress.close()
    frame = read_results(results_path)  # with the rows other processes added
    failures_path = os.path.join(out, "failures.txt")
    if failures:
        write_text(failures_path, "\n\n".join(
            f"{f['dataset']} {f['model']} {f['mechanism']} layers={f['layers']} seed={f['seed']}\n"
            f"{f['traceback']}" for f in failures))
    elif os.path.exists(failures_path):
        os.remove(failures_path)
    if len(frame):
        write_report(out, frame, args.alpha)
    return frame, failures


def write_report(out, frame, alpha=0.05):
    """Rewrite a grid's ``tables.md``, ``summary.csv`` and ``validation.png`` from its runs.

    ``frame``: the grid's results (:func:`read_results`). Returns the report's named
    sections (:func:`~recbole_awrsr.tables.report_sections`), ``{}`` when the grid has
    no run yet.
    """
    if not len(frame):
        return {}
    sections, summary = report_sections(frame, alpha, per_user_reader(out))
    write_text(os.path.join(out, "tables.md"), tables_text(sections, summary))
    # ten significant digits: the last bits of a p-value differ between numpy/scipy builds,
    # and the committed summary should change only when the runs do
    write_text(os.path.join(out, "summary.csv"), summary.to_csv(index=False, float_format="%.10g"))
    for name, figure in (("validation.png", sharpness_figure(frame)),
                         ("curves.png", curves_figure(frame, history_reader(out)))):
        if figure is not None:
            save_figure(figure, os.path.join(out, name))
    return sections


def main(argv=None):
    """Entry point of ``python -m recbole_awrsr.compare`` and ``recbole-awrsr compare``.

    Returns the exit status: 0, or 1 when some runs failed. Without ``argv``, the process's
    command line goes through :func:`recbole_awrsr.cli.main`, which reports mistakes; with
    it, a mistake raises :class:`~recbole_awrsr.errors.ConfigurationError`.
    """
    if argv is None:
        return cli.main(["compare", *sys.argv[1:]])
    args, keys = parse_args(argv)
    frame, failures = compare(args, keys)
    out = os.path.abspath(args.out)
    print(f"results: {os.path.join(out, 'results.csv')} ({len(frame)} runs)")
    if len(frame):
        print(f"tables:  {os.path.join(out, 'tables.md')}")
    if failures:
        print(f"{len(failures)} runs failed (rerun to retry them): {os.path.join(out, 'failures.txt')}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
