"""The data tools' command line: ``python -m recbole_awrsr.data convert|download|stats ...``.

Also ``recbole-awrsr [data] convert|download|stats ...`` and ``python -m recbole_awrsr.datatools``.

convert DATASET INPUT [--output-dir dataset_atomic] [--name NAME] [--drop-unrated] [--format F]
    raw files -> <output-dir>/<name>/<name>.inter (+ .item)
download DATASET [--output-dir dataset_atomic] [--sha256 HEX] [--timeout S]
    official archive -> verified -> converted
stats DATASET [--data-path dataset_atomic]
    users / items / interactions / density after RecBole's filtering, beside the paper's Table 1

A mistake (unknown dataset, bad input line, failed download) prints one ``error:`` line on
stderr and exits with status 2, as every command of the plugin does (:mod:`recbole_awrsr.cli`).
"""

import argparse
import os
import sys
import time

from recbole_awrsr import cli
from recbole_awrsr.datatools.convert import convert, known_datasets
from recbole_awrsr.datatools.download import DEFAULT_TIMEOUT, download
from recbole_awrsr.datatools.stats import dataset_stats, format_stats

DEFAULT_OUTPUT = "dataset_atomic"


def build_parser():
    """The argument parser with its three subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_awrsr.data",
        description="Convert published dataset files to RecBole atomic files, download them, "
        "or show their statistics.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="convert|download|stats")
    names = ", ".join(known_datasets()[:4]) + ", ... (any Amazon 2014 category)"

    convert = commands.add_parser("convert", help="raw files -> atomic files")
    convert.add_argument("dataset", help=f"dataset name: {names}")
    convert.add_argument("input", help="raw file or folder (see dataset_atomic/README.md)")
    convert.add_argument("--output-dir", default=DEFAULT_OUTPUT,
                         help=f"folder that receives <name>/<name>.inter (default {DEFAULT_OUTPUT})")
    convert.add_argument("--name", default=None, help="dataset name to write (default: DATASET); "
                         "for the generic formats pairs and sequence, usually your own")
    convert.add_argument("--drop-unrated", action="store_true",
                         help="anime: drop rating -1 (watched, not rated) instead of keeping it")
    convert.add_argument("--format", dest="input_format", choices=("ratings", "reviews", "sequence"),
                         default=None, help="Amazon: input format (default: from the file name)")

    download = commands.add_parser("download", help="fetch the official archive, verify, convert")
    download.add_argument("dataset")
    download.add_argument("--output-dir", default=DEFAULT_OUTPUT)
    download.add_argument("--sha256", default=None,
                          help="expected SHA-256 of the archive (needed while none is pinned)")
    download.add_argument("--timeout", type=float, default=None,
                          help="seconds to wait for the server (default 5)")

    stats = commands.add_parser("stats", help="statistics after RecBole's filtering")
    stats.add_argument("dataset")
    stats.add_argument("--data-path", default=DEFAULT_OUTPUT,
                       help=f"folder holding <dataset>/<dataset>.inter (default {DEFAULT_OUTPUT})")
    return parser


def main(argv=None):
    """Run one subcommand (``argv[0]``: convert, download or stats); returns the exit status.

    Without ``argv``, the process's command line goes through :func:`recbole_awrsr.cli.main`,
    which reports mistakes; with it, a mistake raises an :class:`~recbole_awrsr.errors.AWRSRError`.
    """
    if argv is None:
        return cli.main(["data", *sys.argv[1:]])
    args = build_parser().parse_args(argv)
    if args.command == "convert":
        return _convert(args)
    if args.command == "download":
        return _download(args)
    return _stats(args)


def _report(out, dataset, output_dir, seconds):
    counts = f"{out.inter.rows:,} interactions" + (
        f", {out.item.rows:,} items in .item" if out.item is not None else "")
    print(f"wrote {os.path.join(out.folder, out.name + '.inter')} ({counts}) in {seconds:.1f} s")
    data_path = "" if os.path.normpath(output_dir) == DEFAULT_OUTPUT else f" --data_path={output_dir}"
    print(f"next: python run_recbole_awrsr.py --dataset={out.name}{data_path}   "
          f"(statistics: python -m recbole_awrsr.data stats {out.name}"
          f"{' --data-path ' + output_dir if data_path else ''})")


def _convert(args):
    start = time.perf_counter()
    out = convert(args.dataset, args.input, args.output_dir, name=args.name,
                  drop_unrated=args.drop_unrated, input_format=args.input_format)
    _report(out, args.dataset, args.output_dir, time.perf_counter() - start)
    return 0


def _download(args):
    start = time.perf_counter()
    out = download(args.dataset, args.output_dir, sha256=args.sha256,
                   timeout=args.timeout or DEFAULT_TIMEOUT)
    _report(out, args.dataset, args.output_dir, time.perf_counter() - start)
    return 0


def _stats(args):
    print(format_stats(args.dataset, dataset_stats(args.dataset, args.data_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
