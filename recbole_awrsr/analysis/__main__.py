"""``python -m recbole_awrsr.analysis attention|topn|curves|cost ...`` (also ``recbole-awrsr analysis ...``).

attention --model-file CKPT [--user ID] [--layer L] [--head H] [--last 15] [--base-model-file CKPT2] --out DIR
    first-order and refined attention of one user's test sequence: heat maps (PNG) + matrices (CSV)
topn --model-files A B ... [--n 1 2 5 10 20] [--labels ...] --out DIR
    NDCG@N and Recall@N on the test set for several models: topn.png + topn.csv
curves RUN_DIR_OR_CSV ... [--metric ndcg@10] [--labels ...] --out DIR
    validation NDCG and global gradient norm per epoch from the trainer's history CSVs
cost [--n 50] [--d 64] [--layers 2] [--heads 2] [--batch 128] [--items 1683] [--backbones sasrec stosa] [--full-step] --out DIR
    parameters and forward/backward time per batch of each mechanism vs the backbone and
    the backbone with one more layer: cost.md + cost.csv

A mistake in the command (unknown user, layer, head, file, metric) prints one ``error:`` line
on stderr and exits with status 2, as every command of the plugin does (:mod:`recbole_awrsr.cli`).
"""

import argparse
import sys
import warnings

from recbole_awrsr import cli
from recbole_awrsr.analysis.attention import run_attention
from recbole_awrsr.analysis.cost import run_cost
from recbole_awrsr.analysis.curves import run_curves
from recbole_awrsr.analysis.topn import run_topn

COMMANDS = ("attention", "topn", "curves", "cost")
#: the help of --trust-checkpoint (attention, topn; recommend has the same option)
TRUST_HELP = ("unpickle the checkpoint fully (it can run code: only for files you trust, e.g. "
              "ones RecBole's own trainer wrote, which the safe loader cannot read)")


def build_parser():
    """The argument parser with the four subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_awrsr.analysis",
        description="Figures and tables about trained models: attention heat maps, NDCG@N, "
        "learning curves, cost of refinement.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="|".join(COMMANDS))

    attention = commands.add_parser("attention", help="attention heat maps of one user's sequence")
    attention.add_argument("--model-file", required=True, help="checkpoint (.pth) of the model")
    attention.add_argument("--user", default=None,
                           help="user token as in the dataset's .inter file "
                                "(default: the user with the longest test sequence)")
    attention.add_argument("--layer", type=int, default=-1,
                           help="attention layer from 0; negative counts from the end (default -1)")
    attention.add_argument("--head", type=int, default=None,
                           help="head from 0 (default: the mean over heads)")
    attention.add_argument("--last", type=int, default=15, help="last positions shown (default 15)")
    attention.add_argument("--base-model-file", default=None,
                           help="checkpoint of the base model (same dataset), shown beside")
    attention.add_argument("--out", required=True, help="output folder")
    attention.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)

    topn = commands.add_parser("topn", help="NDCG@N and Recall@N for several models")
    topn.add_argument("--model-files", nargs="+", required=True, help="checkpoints (.pth)")
    topn.add_argument("--n", type=int, nargs="+", default=[1, 2, 5, 10, 20], help="the N values")
    topn.add_argument("--labels", nargs="+", default=None, help="one legend label per checkpoint")
    topn.add_argument("--out", required=True, help="output folder")
    topn.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)

    curves = commands.add_parser("curves", help="validation NDCG and gradient norm per epoch")
    curves.add_argument("runs", nargs="+",
                        help="history CSVs, or folders (checkpoint_dir) holding *.history.csv")
    curves.add_argument("--metric", default=None,
                        help="validation column to plot (default ndcg@10)")
    curves.add_argument("--labels", nargs="+", default=None, help="one legend label per run")
    curves.add_argument("--out", required=True, help="output folder")

    cost = commands.add_parser("cost", help="parameters and time per mechanism")
    cost.add_argument("--n", type=int, default=50, help="sequence length MAX_ITEM_LIST_LENGTH")
    cost.add_argument("--d", type=int, default=64, help="hidden size")
    cost.add_argument("--layers", type=int, default=2, help="layers of the backbone")
    cost.add_argument("--heads", type=int, default=2, help="attention heads")
    cost.add_argument("--batch", type=int, default=128, help="sequences per batch")
    cost.add_argument("--items", type=int, default=1683, help="item count (ml-100k: 1683)")
    cost.add_argument("--backbones", nargs="+", default=["sasrec"], choices=["sasrec", "stosa"])
    cost.add_argument("--repeats", type=int, default=10, help="timed steps (median is reported)")
    cost.add_argument("--full-step", action="store_true",
                      help="time the whole training loss (with the output layer), not the encoder")
    cost.add_argument("--out", required=True, help="output folder")
    return parser


def dispatch(args):
    """Run the parsed command; returns what it wrote."""
    if args.command == "attention":
        written = run_attention(args.model_file, args.out, user=args.user, layer=args.layer,
                                head=args.head, last=args.last,
                                base_model_file=args.base_model_file, trusted=args.trust_checkpoint)
        return [written["png"], *written["csv"]]
    if args.command == "topn":
        written = run_topn(args.model_files, args.out, ns=args.n, labels=args.labels,
                           trusted=args.trust_checkpoint)
        print(written["table"].to_string(index=False))
        return [written["png"], written["csv"]]
    if args.command == "curves":
        written = run_curves(args.runs, args.out, metric=args.metric, labels=args.labels)
        return [written["png"], written["csv"]]

    written = run_cost(args.out, n=args.n, d=args.d, layers=args.layers, heads=args.heads,
                       batch=args.batch, items=args.items, backbones=tuple(args.backbones),
                       repeats=args.repeats, full_step=args.full_step)
    print(written["markdown"])
    return [written["md"], written["csv"]]


def main(argv=None):
    """Run one analysis command (``argv[0]`` is its name); returns the exit status.

    Without ``argv``, the process's command line goes through :func:`recbole_awrsr.cli.main`,
    which reports mistakes; with it, a mistake raises :class:`~recbole_awrsr.errors.AnalysisError`.
    """
    if argv is None:
        return cli.main(["analysis", *sys.argv[1:]])
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        # RecBole 1.2.1's data loading on pandas 2 warns about its own chained
        # assignments; they would bury the one line this command prints
        warnings.simplefilter("ignore", FutureWarning)
        written = dispatch(args)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
