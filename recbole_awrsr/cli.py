"""Command line: ``recbole-awrsr`` and ``run_recbole_awrsr.py``, the one dispatcher.

``recbole-awrsr [run] --model=M --dataset=D [--config_files="a.yaml b.yaml"] [--key=value ...]``
trains and tests one model; ``--nproc``, ``--world_size``, ``--ip``, ``--port`` and
``--group_offset`` (RecBole's distributed options) train it with several processes. Other
subcommands are listed in :data:`SUBCOMMANDS`; ``convert``, ``download`` and ``stats`` are
also accepted without ``data`` in front.

Exit status, the same for every subcommand: 0 on success; 2 for a mistake in the command
(an :class:`~recbole_awrsr.errors.AWRSRError`, printed as one ``error: <message>`` line on
stderr, or a command line argparse refuses); 1 when only part of the work failed
(``compare``: some runs).
"""

import argparse
import importlib
import sys

from recbole_awrsr.errors import AWRSRError
from recbole_awrsr.quick_start import log_file_path, run, run_distributed

DEFAULT_MODEL = "SASRecAWR"
DEFAULT_DATASET = "ml-100k"

#: subcommand -> module whose ``main(argv)`` handles the arguments after it
SUBCOMMANDS = {
    "data": "recbole_awrsr.datatools.cli",
    "tune": "recbole_awrsr.tune",
    "compare": "recbole_awrsr.compare",
    "report": "recbole_awrsr.report",
    "analysis": "recbole_awrsr.analysis.__main__",
    "recommend": "recbole_awrsr.recommend",
    "park": "recbole_awrsr.parking",
}
#: the data tools' own subcommands, accepted at the top level too (``recbole-awrsr convert ...``)
DATA_COMMANDS = ("convert", "download", "stats")
#: exit status of a mistake in the command
USAGE_ERROR = 2


def config_pairs(parser, extra):
    """``--key=value`` arguments left over by ``parser`` as a config dict (values still strings).

    Anything else is an error through ``parser`` (exit 2, with the expected form).
    """
    pairs = {}
    for arg in extra:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"unrecognised argument '{arg}': config keys are given as --key=value")
        pairs[key] = value
    return pairs


def parse_run_args(argv):
    """Split ``argv`` into (model, dataset, config files, config dict of extra ``--key=value``)."""
    parser = argparse.ArgumentParser(
        prog="recbole-awrsr",
        allow_abbrev=False,  # --seed=7 is a config key, not an abbreviation of an option
        description="Train and test a recbole_awrsr or RecBole model under the AWRSR protocol. "
        "Any further --key=value sets that RecBole/plugin config key.",
    )
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL,
                        help=f"model name, ours or RecBole's (default {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET,
                        help=f"dataset name (default {DEFAULT_DATASET}, shipped inside recbole)")
    parser.add_argument("--config_files", default=None,
                        help="space-separated YAML files, later ones win")
    parser.add_argument("--no-save", dest="saved", action="store_false",
                        help="do not write a checkpoint (tests the last epoch's weights)")
    args, extra = parser.parse_known_args(argv)
    config_dict = config_pairs(parser, extra)
    config_files = args.config_files.split() if args.config_files else None
    return args.model, args.dataset, config_files, config_dict, args.saved


def parse_distributed_args(argv):
    """Take RecBole's distributed options out of ``argv``: ``(options, rest of argv)``.

    ``--nproc`` processes on this machine, ``--world_size`` processes in all (default
    nproc), ``--ip``/``--port`` of the machine with rank 0, ``--group_offset`` the rank
    of this machine's first process. ``options`` is empty when none was given.
    """
    # no abbreviations: --ip_x=... or --port_y=... are config keys, not these options
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--nproc", type=int, default=None)
    parser.add_argument("--world_size", type=int, default=None)
    parser.add_argument("--ip", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--group_offset", type=int, default=None)
    args, rest = parser.parse_known_args(argv)
    options = {key: value for key, value in vars(args).items() if value is not None}
    return options, rest


DISTRIBUTED_DEFAULTS = {"nproc": 1, "world_size": -1, "ip": "localhost", "port": 5678,
                        "group_offset": 0}


def format_results(model, dataset, test_result, model_file=None, log_file=None):
    """One readable table of test metrics, plus where the checkpoint and log went."""
    width = max(len(name) for name in test_result) if test_result else 6
    lines = [f"Test results: {model} on {dataset}", f"{'metric':<{width}}  value"]
    lines += [f"{name:<{width}}  {value:.4f}" for name, value in test_result.items()]
    lines.append(f"checkpoint: {model_file if model_file else '(not saved)'}")
    lines.append(f"log:        {log_file if log_file else '(none)'}")
    return "\n".join(lines)


def run_main(argv):
    """Train and test one model as the command line says; returns RecBole's result dict.

    With the distributed options the result is None when no process on this machine had
    rank 0. A mistake in the command raises :class:`~recbole_awrsr.errors.ConfigurationError`
    before training starts.
    """

    distributed, argv = parse_distributed_args(argv)
    model, dataset, config_files, config_dict, saved = parse_run_args(argv)
    if distributed:
        result = run_distributed(model, dataset, config_files, config_dict, saved=saved,
                                 **{**DISTRIBUTED_DEFAULTS, **distributed})
        if result is not None:
            print(format_results(model, dataset, result["test_result"]))
        return result
    result, built = run(model, dataset, config_files, config_dict, saved=saved)
    print(format_results(model, dataset, result["test_result"],
                         built.trainer.saved_model_file if saved else None, log_file_path()))
    return result


def dispatch(argv):
    """Hand ``argv`` to its subcommand, without the subcommand's name; returns the exit status."""
    command = argv[0] if argv else "run"
    if command in DATA_COMMANDS:  # the data tools' parser reads its own subcommand
        return importlib.import_module(SUBCOMMANDS["data"]).main(argv)
    if command in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[command]).main(argv[1:])
    if command == "run":
        argv = argv[1:]
    # no result: with distributed options, rank 0 ran on another machine (as before: status 2)
    return 0 if run_main(argv) is not None else USAGE_ERROR


def main(argv=None):
    """Entry point of every command line of the plugin; returns the exit status.

    ``python -m recbole_awrsr.<module>`` comes here too (each module's ``main()`` without
    arguments hands the process's command line over), so a mistake is reported the same
    way whichever door the command came in by.
    """

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(argv)
    except AWRSRError as error:
        # a mistake in the command: the message is the fix, a traceback would bury it
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
