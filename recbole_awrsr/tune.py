"""Hyperparameter search on Ray Tune for any model the plugin trains (ours or RecBole's).

``recbole-awrsr tune --model=M --dataset=D --params_file=F [options] [--key=value ...]``
(also ``python run_hyper.py ...``). The params file is RecBole's format, one
parameter per line, read by :mod:`recbole_awrsr.search_space`.

Every trial trains with the plugin's trainer and reports each epoch's validation
metrics to Ray, so ASHA can stop weak trials early. Ray's API is the one of Ray >= 2.45
(``tune.Tuner``, ``tune.report``, ``tune.get_context``; see setup.cfg for the tested range). At the end ``--out`` holds
``trials.csv`` (every trial, failed ones included), ``best.yaml`` (the best
configuration, accepted by ``--config_files``) and ``best_result.json`` (that
configuration trained and tested once more, in the driver).

A search resumes: the same command with the same ``--out`` continues an interrupted
search (Ray's ``Tuner.restore``), each unfinished trial from its last reported epoch, also
on another machine from the search ``recbole-awrsr park`` packed (:mod:`~recbole_awrsr.parking`);
``search.json`` there records what the search is, and another search is refused. An
interrupted search (Ctrl+C, SIGUSR1) writes ``trials.csv`` with each trial's Ray status
(``PENDING``, ``RUNNING``, ... for the unfinished ones) and stops there, with exit
status 2: no ``best.yaml`` is chosen from part of the trials.
"""

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

import pandas as pd
import torch
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_awrsr import cli, parking
from recbole_awrsr.cli import config_pairs
from recbole_awrsr.config import Config, _parse_value
from recbole_awrsr.errors import ConfigurationError, SearchError

from recbole_awrsr.files import write_text
from recbole_awrsr.quick_start import build, run
from recbole_awrsr.search_space import read_params_file, search_space
from recbole_awrsr.tables import ENDED
from recbole_awrsr.trainer import last_state_path


@dataclass(frozen=True)
class Study:
    """What every trial shares: model, dataset, absolute config files and fixed keys.

    ``data_path``: the absolute folder of the atomic files, as the command's working
    directory resolves it, for trials that run elsewhere (None: the config decides).
    """
    model: str
    dataset: str
    config_files: tuple
    config_dict: dict
    checkpoint_root: str
    threads: int
    data_path: str = None


def absolute_paths(config_dict):
    """``config_dict`` with relative ``data_path``/``checkpoint_dir`` made absolute.

    Ray runs each trial in its own working directory.
    """
    fixed = dict(config_dict)
    for key in ("data_path", "checkpoint_dir"):
        value = fixed.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            fixed[key] = os.path.abspath(value)
    return fixed


#: a trial's files, in its folder and in the checkpoints it reports to Ray
TRIAL_MODEL = "model.pth"


def train_trial(search_config, study):
    """Ray trainable: train one configuration, reporting every epoch's validation metrics.

    Each trial writes its checkpoint in its own folder (RecBole names checkpoints by
    the second, so parallel trials sharing one would overwrite each other). Every report
    carries a Ray checkpoint: the trial's best weights and its state after the epoch
    (:meth:`~recbole_awrsr.trainer.PluginTrainerMixin.resume_last_state`), so that a
    restored search continues an interrupted trial from its last epoch, with the numbers
    it would have reached without the interruption.
    """
    from ray import tune

    # Ray workers carry flags such as --node-ip-address; RecBole code that reads
    # sys.argv must not see them (our Config already ignores it).
    sys.argv = sys.argv[:1]
    torch.set_num_threads(study.threads)
    folder = os.path.join(study.checkpoint_root, tune.get_context().get_trial_id())
    # Ray runs the trial in a folder of its own: a relative data_path (the default
    # dataset_atomic/ included) is resolved where the command was started
    paths = {"data_path": study.data_path} if study.data_path else {}
    config_dict = {**paths, **study.config_dict, **search_config, "checkpoint_dir": folder}
    built = build(Config(study.model, study.dataset, list(study.config_files), config_dict))
    trainer = built.trainer
    os.makedirs(folder, exist_ok=True)
    trainer.saved_model_file = os.path.join(folder, TRIAL_MODEL)
    last_state = last_state_path(trainer.saved_model_file)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            for name in (TRIAL_MODEL, os.path.basename(last_state)):
                if os.path.exists(os.path.join(saved, name)):
                    shutil.copyfile(os.path.join(saved, name), os.path.join(folder, name))
        trainer.resume_last_state()

    def report(epoch, valid_score):
        # called after the epoch's early-stopping bookkeeping: its state is complete
        trainer.write_last_state(epoch)
        metrics = {f"valid_{key}": value for key, value in trainer.last_valid_result.items()}
        with tempfile.TemporaryDirectory() as staged:
            for path in (trainer.saved_model_file, last_state):
                if os.path.exists(path):
                    shutil.copyfile(path, os.path.join(staged, os.path.basename(path)))
            tune.report({"epoch": epoch, "valid_score": valid_score,
                         "best_valid_score": trainer.best_valid_score, **metrics},
                        checkpoint=tune.Checkpoint.from_directory(staged))

    trainer.fit(built.train_data, built.valid_data, saved=True, show_progress=False,
                callback_fn=report)


def trial_rows(results, params, mode, saved):
    """One dict per trial of a ``ResultGrid``: status, searched values, best epoch's
    validation metrics, error.

    ``status`` is Ray's: ``TERMINATED`` for a trial that ended (ASHA's stopped trials
    too), ``ERROR`` for one that raised, ``PENDING``/``RUNNING``/``PAUSED`` for one an
    interrupted search left unfinished; ``saved`` (:func:`saved_trials`) gives it, and the
    config of a trial that never started. A trial that failed before its first report still
    has Ray's automatic metrics (its id and config).
    """
    rows = []
    for result in results:
        trial_id = result.metrics.get("trial_id")
        status, saved_config = saved.get(trial_id, ("UNKNOWN", None))
        config = result.config or saved_config or trial_params(result.path)
        row = {"trial_id": trial_id, "status": status}
        row.update({name: config.get(name) for name in params})
        frame = result.metrics_dataframe
        if frame is None or frame.empty or "valid_score" not in frame:
            row["epochs_reported"] = 0
        else:
            # A trial restored from a checkpoint older than its last report (Ray saves
            # the experiment state now and then, not at every report) trains the epochs
            # after that checkpoint again: the later report of an epoch is the one kept.
            frame = frame.drop_duplicates("epoch", keep="last").reset_index(drop=True)
            scores = frame["valid_score"]
            target = scores.max() if mode == "max" else scores.min()
            # RecBole's early stopping keeps the later of tied epochs; so does this row
            best = scores.index[scores == target][-1]
            row["epochs_reported"] = len(frame)
            row["best_epoch"] = int(frame.loc[best, "epoch"])
            row["valid_score"] = float(frame.loc[best, "valid_score"])
            row.update({key: float(frame.loc[best, key])
                        for key in frame.columns if key.startswith("valid_") and key != "valid_score"})
        row["error"] = _first_error_line(result.error)
        row["config"] = config
        rows.append(row)
    return rows


def saved_trials(experiment):
    """Ray's status and config of each trial of the search saved in ``experiment``, by trial id.

    Read from the experiment's saved state, not from the ``ResultGrid``: after an
    interruption Ray marks every trial of the grid ``TERMINATED``, while the state it
    saved (what ``Tuner.restore`` resumes from) keeps the unfinished ones ``RUNNING``,
    ``PENDING`` or ``PAUSED``; and it holds the config of trials that never started.
    """
    from ray import tune

    return {trial.trial_id: (trial.status, trial.config)
            for trial in tune.ExperimentAnalysis(experiment).trials}


def trial_params(path):
    """A trial's searched values from its folder's ``params.json`` (``{}`` when there is none).

    A restored search's results do not carry the config of a trial that failed before
    the restore; Ray's trial folder does.
    """
    try:
        with open(os.path.join(path, "params.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, TypeError, ValueError):
        return {}


def _first_error_line(error):
    """The exception line of a failed trial's error ('' when it did not fail)."""
    if error is None:
        return ""
    # Ray wraps the trial's exception with its traceback; the last line is
    # "ExceptionType: message"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def best_yaml_text(study, config_files_content, best_params, command):
    """The best configuration as YAML: config files, then fixed keys, then searched values.

    Model and dataset stay on the command line (the header says the rerun command);
    per-trial paths are left out.
    """

    merged = {**config_files_content, **study.config_dict, **best_params}
    merged.pop("checkpoint_dir", None)
    merged = {key: _plain(value) for key, value in merged.items()}
    header = (f"# Best configuration found by recbole-awrsr tune for {study.model} on {study.dataset}.\n"
              f"# Rerun it with:\n#   {command}\n")
    return header + yaml.safe_dump(merged, sort_keys=False, default_flow_style=False)


def _plain(value):
    """numpy scalars and tuples as plain Python values, so that safe YAML can hold them."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def load_config_files(paths):
    """The keys of RecBole YAML config files, later files winning (RecBole's loader)."""
    loader = RecBoleConfig._build_yaml_loader(None)  # reads 1e-3 as a float, as RecBole does
    merged = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            merged.update(yaml.load(handle.read(), Loader=loader) or {})
    return merged


def parse_args(argv):
    """Options of the ``tune`` subcommand, and the fixed ``--key=value`` config keys."""
    parser = argparse.ArgumentParser(
        prog="recbole-awrsr tune",
        description="Search hyperparameters with Ray Tune; any further --key=value is a fixed config key.",
        allow_abbrev=False,  # a config key such as --model_x must not match an option
    )
    parser.add_argument("--model", "-m", required=True)
    parser.add_argument("--dataset", "-d", required=True)
    parser.add_argument("--params_file", "--params-file", required=True,
                        help="RecBole params file: 'name choice [..]', 'uniform a b', "
                        "'loguniform a b' (natural logs), 'quniform a b q'")
    parser.add_argument("--config_files", "--config-files", default=None,
                        help="space-separated YAML files, later ones win")
    parser.add_argument("--scheduler", choices=("asha", "fifo"), default="asha")
    parser.add_argument("--grace-period", type=int, default=5,
                        help="ASHA: epochs every trial gets before it can be stopped (default 5)")
    parser.add_argument("--search", choices=("random", "grid"), default="random",
                        help="grid: every choice value is tried (times --num-samples)")
    parser.add_argument("--num-samples", type=int, default=10)
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--gpus-per-trial", type=float, default=0)
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--address", default=None,
                        help="join this Ray cluster (e.g. 'auto' or 'host:6379') instead of a local one")
    parser.add_argument("--out", default="tune_results", help="output folder (default tune_results)")
    parser.add_argument("--no-test", dest="test_best", action="store_false",
                        help="do not train and test the best configuration at the end")
    args, extra = parser.parse_known_args(argv)
    fixed = config_pairs(parser, extra)
    if args.num_samples < 1:
        parser.error("--num-samples must be at least 1")
    return args, fixed


def tune_model(args, fixed):
    """Run the search that :func:`parse_args` describes; returns a summary dict.

    Joins a running Ray instance if there is one (tests keep one for several runs);
    otherwise starts one (or connects to ``--address``) and shuts it down at the end.
    """
    import ray
    from ray import tune


    out = os.path.abspath(args.out)
    params = read_params_file(args.params_file)
    config_files = tuple(os.path.abspath(path) for path in (args.config_files or "").split())
    for path in config_files:
        if not os.path.isfile(path):
            raise ConfigurationError(f"config file not found: {path}")
    # values as the Config will read them, so that paths can be made absolute and
    # best.yaml holds numbers, not strings
    fixed = absolute_paths({key: _parse_value(value) if isinstance(value, str) else value
                            for key, value in fixed.items()})
    both = sorted(set(params) & set(fixed))
    if both:
        raise ConfigurationError(
            f"{', '.join(both)}: searched in {args.params_file} and fixed with --{both[0]}=...; "
            f"drop one (e.g. delete the line from a copy of the params file)."
        )
    # Checked here, with the searched keys at their first values, so that a
    # mistake in the fixed keys fails before Ray starts.
    probe = Config(args.model, args.dataset, list(config_files),
                   {**fixed, **{name: p.lowest() for name, p in params.items()}})
    mode = "max" if probe["valid_metric_bigger"] else "min"
    epochs = probe["epochs"]

    study = Study(args.model, args.dataset, config_files, fixed,
                  os.path.join(out, "checkpoints"), max(1, int(args.cpus_per_trial)),
                  # RecBole's Config has joined the dataset's name to data_path
                  os.path.dirname(os.path.abspath(probe["data_path"])))
    check_same_search(out, search_fingerprint(args, fixed, config_files))
    started_ray = False
    temp_dir = None
    if not ray.is_initialized():
        if args.address:
            check_address(args.address)
            try:
                ray.init(address=args.address)
            except ConnectionError as error:
                raise ConfigurationError(f"--address {args.address}: no Ray cluster answered "
                                         f"({str(error).splitlines()[0][:160]})") from None
        else:
            temp_dir = start_local_ray(args.num_cpus or os.cpu_count())
        started_ray = True
    try:
        scheduler = None
        if args.scheduler == "asha":
            scheduler = tune.schedulers.ASHAScheduler(
                time_attr="training_iteration", max_t=max(1, epochs),
                grace_period=max(1, min(args.grace_period, epochs)), reduction_factor=2)
        began = time.monotonic()
        trainable = tune.with_resources(tune.with_parameters(train_trial, study=study),
                                        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
        space = search_space(params, grid=args.search == "grid")
        experiment, bundle = parking.search_folders(out)
        if parking.unpark_search(out):
            print(f"unpacked the parked search {bundle}", file=sys.stderr)
        if tune.Tuner.can_restore(experiment):
            # an interrupted search: finished trials stay, unfinished ones continue from
            # their last reported epoch (ASHA's rungs hold what is reported from here on)
            print(f"continuing the search in {experiment}", file=sys.stderr)
            tuner = tune.Tuner.restore(experiment, trainable=trainable, param_space=space,
                                       resume_unfinished=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(metric="valid_score", mode=mode,
                                            num_samples=args.num_samples, scheduler=scheduler),
                run_config=tune.RunConfig(
                    name=os.path.basename(experiment), storage_path=os.path.dirname(experiment), verbose=1,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
            )
        # a failed trial is recorded in its result, not raised: the search goes on
        results = tuner.fit()
        seconds = time.monotonic() - began
        # read while Ray is up: a trial's history may still be fetched from it
        rows = trial_rows(results, params, mode, saved_trials(experiment))
    finally:
        if started_ray:
            ray.shutdown()
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)

    configs = {row["trial_id"]: row.pop("config") for row in rows}
    trials = pd.DataFrame(rows)
    for column in ("best_epoch",):
        if column in trials:
            trials[column] = trials[column].astype("Int64")  # failed trials leave it empty
    write_text(os.path.join(out, "trials.csv"), trials.to_csv(index=False))
    unfinished = trials[~trials["status"].isin(ENDED)]
    if len(unfinished):
        # Ray returns from an interrupted fit() as from a finished one; a best.yaml chosen
        # now would come from the trials that happened to run first
        raise SearchError(f"the search was interrupted with {len(unfinished)} of {len(trials)} "
                          f"trials unfinished (their status is in {os.path.join(out, 'trials.csv')}); "
                          f"the same command continues it")
    summary = {"out": out, "trials": len(rows), "seconds": seconds,
               "failed": int((trials["status"] == "ERROR").sum())}
    finished = trials.dropna(subset=["valid_score"]) if "valid_score" in trials else trials.iloc[0:0]
    if finished.empty:
        errors = [e for e in trials.get("error", pd.Series(dtype=str)).fillna("") if e]
        first = f" (first: {errors[0]})" if errors else ""
        raise SearchError(f"every trial failed{first}; see {os.path.join(out, 'trials.csv')} "
                          f"and the error files under {os.path.join(out, 'ray')}")
    best_row = finished.loc[finished["valid_score"].idxmax() if mode == "max"
                            else finished["valid_score"].idxmin()]
    best_params = {name: _plain(configs[best_row["trial_id"]][name]) for name in params}
    best_path = os.path.join(out, "best.yaml")
    # the path as the user gave it: best.yaml is committed and read from other checkouts
    command = (f"recbole-awrsr --model={args.model} --dataset={args.dataset} "
               f"--config_files={os.path.join(args.out, 'best.yaml')}")
    write_text(best_path, best_yaml_text(study, load_config_files(config_files),
                                                best_params, command))
    parking.search_finished(out)
    summary.update(best_trial=best_row["trial_id"], best_valid_score=float(best_row["valid_score"]),
                   best_params=best_params, best_yaml=best_path)
    if args.test_best:
        result, _ = run(args.model, args.dataset, [best_path],
                        {"checkpoint_dir": os.path.join(out, "best_checkpoint")}, saved=True)
        summary["best_result"] = {
            "best_valid_score": float(result["best_valid_score"]),
            "best_valid_result": {k: float(v) for k, v in result["best_valid_result"].items()},
            "test_result": {k: float(v) for k, v in result["test_result"].items()},
        }
    write_text(os.path.join(out, "best_result.json"), json.dumps(summary, indent=2))
    return summary


def start_local_ray(num_cpus):
    """Start Ray on this machine for a search with ``num_cpus`` trial CPUs; returns its
    temporary folder (for the caller to remove after ``ray.shutdown()``).

    Trials run at the niceness of the command that started them: Ray's own default
    (``RAY_worker_niceness``, 15) lets every other process on the machine go first, and
    beside a training run a trial got a few percent of a core (an epoch 25-40 times
    slower). Ray adds the value to the niceness a worker inherits (a command at nice 5
    with the value 5 gave workers at 10), so 0 keeps the command's. A value already in
    the environment is kept.
    """
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    # Ray's socket paths must stay short (about 100 characters): not under $TMPDIR
    temp_dir = tempfile.mkdtemp(prefix="rayawr", dir="/tmp" if os.path.isdir("/tmp") else None)
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    return temp_dir


def search_fingerprint(args, fixed, config_files):
    """What defines a search: model, dataset, the params file's and config files' contents,
    the fixed keys and the search options (what a restored search must share)."""
    def content(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    return {"model": args.model, "dataset": args.dataset,
            "params_file": content(args.params_file),
            "config_files": {os.path.basename(path): content(path) for path in config_files},
            "fixed": {key: repr(value) for key, value in sorted(fixed.items())},
            "scheduler": args.scheduler, "grace_period": args.grace_period,
            "search": args.search, "num_samples": args.num_samples}


def check_same_search(out, fingerprint):
    """Record the search in ``out/search.json``; refuse to continue a different one there.

    A rerun with the same ``--out`` continues the search Ray left in it, so it must be the
    same search: other settings would be silently ignored by Ray's restore.
    """
    path = os.path.join(out, "search.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle)
        differs = sorted(key for key in set(recorded) | set(fingerprint)
                         if recorded.get(key) != fingerprint.get(key))
        if differs:
            raise ConfigurationError(
                f"{out} holds another search (it differs in: {', '.join(differs)}); a rerun with "
                f"the same --out continues the search there: use another --out, or delete {out}")
        return
    os.makedirs(out, exist_ok=True)
    write_text(path, json.dumps(fingerprint, indent=1))


def check_address(address, timeout=3.0):
    """Fail at once, naming it, when a ``host:port`` Ray address takes no connection.

    Ray itself retries a dead address for minutes before it gives up. ``auto`` (the
    cluster this machine runs) is left to Ray, which answers at once when there is none.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        if address != "auto":
            raise ConfigurationError(f"--address {address!r}: expected 'auto' or 'host:port'")
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigurationError(
            f"--address {address}: nothing accepts connections there ({error.strerror or error}); "
            f"start the cluster (ray start --head) or fix the address") from None


def main(argv=None):
    """Entry point of ``recbole-awrsr tune`` and ``run_hyper.py``; returns the exit status.

    Without ``argv``, the process's command line goes through :func:`recbole_awrsr.cli.main`,
    which reports mistakes; with it, a mistake raises
    :class:`~recbole_awrsr.errors.ConfigurationError`.
    """
    if argv is None:
        return cli.main(["tune", *sys.argv[1:]])
    args, fixed = parse_args(argv)
    summary = tune_model(args, fixed)
    print(f"{summary['trials']} trials ({summary['failed']} failed) in {summary['seconds']:.0f}s; "
          f"best {summary['best_trial']}: valid score {summary['best_valid_score']:.4f} "
          f"with {summary['best_params']}")
    if "best_result" in summary:
        print(f"best configuration retrained: valid {summary['best_result']['best_valid_score']:.4f}, "
              f"test {summary['best_result']['test_result']}")
    print(f"trials: {os.path.join(summary['out'], 'trials.csv')}\nbest:   {summary['best_yaml']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
