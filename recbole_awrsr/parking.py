"""Parked runs: a grid's unfinished runs carried in git, so that another machine continues them.

A converged run can outlast a working session, and the next session may start on a new
machine, where the ignored ``checkpoints/`` folder of the grid is gone. Parking bundles
what a resumable run keeps there (its state after the last finished epoch, the weights of
its best epoch, its training history) into one file, ``<grid>/parked/<cell>.pth``, which is
committed with the grid's rows. ``compare`` unparks a cell's bundle before it trains the
cell, where it is further on than what the checkpoints folder holds, and removes it once
the cell's row is written; the run then gives the row an uninterrupted run gives (on the
same processor model; on another one it is a replicate, as any seed is).

A search of ``tune`` parks the same way: once it is stopped (Ctrl+C or SIGINT/SIGUSR1 to its
driver, which writes ``trials.csv`` with every trial's status and exits 2), ``park`` packs
Ray's experiment folder (``<out>/ray/search``: its saved state, every trial's reports, and
the last checkpoint of each unfinished trial, its best weights without their optimizer;
ended trials' checkpoints are never read again and stay out) into ``<out>/parked/search.tar.gz``; ``tune`` unpacks it where the
folder is missing, continues the search from it (Ray's ``Tuner.restore``) and removes it
once the search has chosen.

The bundle of a run is the resumable state itself (``config``, ``state_dict``, optimizer, counters,
random states) plus two keys: ``parked_best`` (the best checkpoint without its optimizer:
only its weights are read again) and ``parked_history`` (the history CSV's text), so the
safe checkpoint loader reads it like any checkpoint.
"""

import argparse
import glob
import io
import os
import tarfile
import time

import pandas as pd
import torch

from recbole_awrsr.compat import load_checkpoint
from recbole_awrsr.errors import CheckpointError
from recbole_awrsr.files import atomic_path, write_text
from recbole_awrsr.history import history_path
from recbole_awrsr.tables import ENDED
from recbole_awrsr.trainer import LAST_STATE_SUFFIX, last_state_path

#: a grid's folder of parked runs (tracked), beside its ignored ``checkpoints/``
PARKED_FOLDER = "parked"
#: reading a running process's files: how often, and how long to wait between tries
READ_TRIES, READ_WAIT_S = 5, 2.0
#: a stopped search's Ray experiment folder, packed (in ``<out>/parked/``)
SEARCH_BUNDLE = "search.tar.gz"


def parked_path(checkpoint_file):
    """Where the run of ``<grid>/checkpoints/<cell>.pth`` is parked: ``<grid>/parked/<cell>.pth``."""
    folder, name = os.path.split(os.fspath(checkpoint_file))
    return os.path.join(os.path.dirname(folder), PARKED_FOLDER, name)


def unfinished_runs(grid):
    """The checkpoint files of the grid's runs that have a resumable state (unfinished), sorted."""
    states = glob.glob(os.path.join(os.fspath(grid), "checkpoints", "*" + LAST_STATE_SUFFIX))
    return sorted(state[:-len(LAST_STATE_SUFFIX)] + ".pth" for state in states)


def read_run(checkpoint_file):
    """The bundle of a resumable run: its last state with ``parked_best`` and ``parked_history``.

    The run may be training while it is read: the last state is replaced atomically, but a
    new best checkpoint can be written between the two reads. A bundle is only returned when
    its best checkpoint belongs to its state (same best validation score, not from a later
    epoch); otherwise it is read again. Returns None when the run has no state (any more:
    it may have ended meanwhile); raises CheckpointError when no consistent pair is read in
    :data:`READ_TRIES` tries.
    """
    checkpoint_file = os.fspath(checkpoint_file)
    why = "not read"
    for attempt in range(READ_TRIES):
        if attempt:
            time.sleep(READ_WAIT_S)
        if not os.path.isfile(last_state_path(checkpoint_file)):
            return None
        try:
            best = (load_checkpoint(checkpoint_file) if os.path.isfile(checkpoint_file)
                    else None)
            state = load_checkpoint(last_state_path(checkpoint_file))
        except CheckpointError as error:  # half-written by the running process, or gone
            why = str(error)
            continue
        if state["best_epoch"] is not None:
            if best is None:
                why = f"{checkpoint_file} (its best epoch's weights) is missing"
                continue
            if best["epoch"] > state["epoch"] or best["best_valid_score"] != state["best_valid_score"]:
                why = (f"{checkpoint_file} is of epoch {best['epoch']}, its state "
                       f"{last_state_path(checkpoint_file)} of epoch {state['epoch']}")
                continue
            best.pop("optimizer", None)  # only the weights of the best epoch are read again
        else:
            best = None
        history = history_path(checkpoint_file)
        text = None
        if os.path.isfile(history):
            with open(history, encoding="utf-8") as handle:
                text = handle.read()
        return {**state, "parked_best": best, "parked_history": text}
    raise CheckpointError(f"could not read a consistent state of the run {checkpoint_file}: {why}")


def park(grid):
    """Bundle every unfinished run of ``grid`` (a compare output folder) into ``grid/parked/``.

    Returns ``[(parked file, epoch of its state)]``. A bundle already there is replaced;
    the runs may go on training meanwhile.
    """
    parked = []
    for checkpoint_file in unfinished_runs(grid):
        bundle = read_run(checkpoint_file)
        if bundle is None:  # it ended between the listing and the reading
            continue
        target = parked_path(checkpoint_file)
        with atomic_path(target) as temporary:
            torch.save(bundle, temporary)
        parked.append((target, bundle["epoch"]))
    return parked


def unpark(checkpoint_file):
    """Put the parked run of ``checkpoint_file`` back into the checkpoints folder, where it is
    further on than the state there (or there is none); returns the epoch of its state, or
    None when nothing was unparked."""
    source = parked_path(checkpoint_file)
    if not os.path.isfile(source):
        return None
    bundle = load_checkpoint(source)
    local = last_state_path(checkpoint_file)
    if os.path.isfile(local) and load_checkpoint(local)["epoch"] >= bundle["epoch"]:
        return None
    best, history = bundle.pop("parked_best"), bundle.pop("parked_history")
    # the best weights first: a state without them would be taken for a run to start over
    if best is not None:
        with atomic_path(checkpoint_file) as temporary:
            torch.save(best, temporary)
    if history is not None:
        write_text(history_path(checkpoint_file), history)
    with atomic_path(local) as temporary:
        torch.save(bundle, temporary)
    return bundle["epoch"]


def finished(checkpoint_file):
    """The cell's row is written: its parked run, if any, is not needed again."""
    source = parked_path(checkpoint_file)
    if os.path.isfile(source):
        os.remove(source)


def search_folders(out):
    """(Ray's experiment folder of the search in ``out``, its packed bundle)."""
    out = os.fspath(out)
    return os.path.join(out, "ray", "search"), os.path.join(out, PARKED_FOLDER, SEARCH_BUNDLE)


def park_search(out):
    """Pack the stopped search of ``out`` (a ``tune --out`` folder) into its bundle; returns
    the bundle's path.

    Raises CheckpointError when the search is not stopped: its ``trials.csv`` (written as
    the driver stops) must be newer than every state Ray saved, and name unfinished trials.
    """
    experiment, bundle = search_folders(out)
    trials_file = os.path.join(os.fspath(out), "trials.csv")
    states = glob.glob(os.path.join(experiment, "experiment_state-*.json"))
    if not states:
        raise CheckpointError(f"{experiment} holds no saved Ray search to park")
    if not os.path.isfile(trials_file) or os.path.getmtime(trials_file) < max(map(os.path.getmtime, states)):
        raise CheckpointError(f"the search in {out} is running (its trials.csv is older than "
                              f"Ray's state): stop it first (Ctrl+C, or kill -INT its driver: "
                              f"it writes trials.csv and exits 2), then park it")
    trials = pd.read_csv(trials_file, dtype={"trial_id": str})
    if trials["status"].isin(ENDED).all():
        raise CheckpointError(f"the search in {out} has ended (every trial in {trials_file} "
                              f"has): nothing to park; the same tune command chooses from it")
    ended = tuple(f"train_trial_{trial}_" for trial in trials.loc[trials["status"].isin(ENDED), "trial_id"])

    with atomic_path(bundle) as temporary:
        with tarfile.open(temporary, "w:gz") as packed:
            for path in sorted(_files(experiment)):
                name = "search/" + os.path.relpath(path, experiment).replace(os.sep, "/")
                parts = name.split("/")
                in_checkpoint = len(parts) > 3 and parts[2].startswith("checkpoint_")
                if in_checkpoint and parts[1].startswith(ended):
                    continue  # an ended trial's checkpoint is never read again
                if in_checkpoint and name.endswith(".pth") and not name.endswith(LAST_STATE_SUFFIX):
                    _add_weights_only(packed, path, name)
                else:
                    packed.add(path, arcname=name, recursive=False)
    return bundle


def _files(folder):
    for root, _, names in os.walk(folder):
        for name in names:
            yield os.path.join(root, name)


def _add_weights_only(packed, path, name):
    """Add a best checkpoint to ``packed`` without its optimizer (only its weights are read
    again: the optimizer goes on from the last state)."""
    checkpoint = load_checkpoint(path)
    checkpoint.pop("optimizer", None)
    data = io.BytesIO()
    torch.save(checkpoint, data)
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = data.tell(), int(os.path.getmtime(path)), 0o644
    data.seek(0)
    packed.addfile(info, data)


def unpark_search(out):
    """Unpack the parked search of ``out`` where Ray's experiment folder is missing; returns
    whether it did."""
    experiment, bundle = search_folders(out)
    if os.path.exists(experiment) or not os.path.isfile(bundle):
        return False
    with tarfile.open(bundle) as packed:
        packed.extractall(os.path.dirname(experiment), filter="data")
    return True


def search_finished(out):
    """The search of ``out`` has chosen: its parked bundle, if any, is not needed again."""
    bundle = search_folders(out)[1]
    if os.path.isfile(bundle):
        os.remove(bundle)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="recbole-awrsr park",
        description="Bundle the unfinished runs of compare output folders, or a stopped tune "
        "search, into their parked/ folders (to commit), so that compare or tune continues "
        "them on another machine.")
    parser.add_argument("grids", nargs="+", help="compare or tune output folders (--out)")
    args = parser.parse_args(argv)
    for grid in args.grids:
        if not os.path.isdir(grid):
            parser.error(f"{grid} is not a folder (a compare or tune --out folder was expected)")
    for grid in args.grids:
        if os.path.isdir(search_folders(grid)[0]):
            bundle = park_search(grid)
            print(f"parked {bundle} ({os.path.getsize(bundle) / 1e6:.1f} MB)")
            continue
        runs = park(grid)
        for target, epoch in runs:
            print(f"parked {target} (state after epoch {epoch}, {os.path.getsize(target) / 1e6:.1f} MB)")
        if not runs:
            print(f"{grid}: no unfinished runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
