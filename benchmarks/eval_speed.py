"""What a full-ranking validation pass costs, and what the plugin's collector saves. Issue 15, item 3.

For each dataset, SASRecAWR ``simple`` with the plugin's defaults is built through
``recbole_awrsr.quick_start.build`` (untrained: the cost does not depend on the weights)
and its validation set is evaluated with RecBole's trainer loop, whole passes alternating:

* ``recbole``: RecBole's ``Collector`` (a users x items matrix per batch for the top-k hits);
* ``plugin``: :class:`recbole_awrsr.collector.TopkCollector` (the same numbers from the
  positive pairs), at each ``--batch-sizes`` value of ``eval_batch_size``.

Each row also splits one pass into its parts, timed on the same batches: the model's
scoring with the history masked (``_full_sort_batch_eval``), the collector, and the rest
(loading batches, RecBole's metric computation). Metrics of both collectors are checked equal.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/eval_speed.py --datasets ml-100k beauty ml-1m --out benchmarks/results/eval
"""

import argparse
import json
import statistics
import sys
import time

from recbole.evaluator import Collector

from common import write_report  # benchmarks/common.py (the script's folder is on sys.path)
from recbole_awrsr import Config
from recbole_awrsr.collector import TopkCollector
from recbole_awrsr.quick_start import build


def parts(trainer, data):
    """Seconds of one pass split into scoring and collecting (the batches loaded beforehand)."""
    batches = list(data)
    trainer.model.eval()
    trainer.tot_item_num = data._dataset.item_num
    scoring = collecting = 0.0
    for batch in batches:
        started = time.perf_counter()
        interaction, scores, positive_u, positive_i = trainer._full_sort_batch_eval(batch)
        middle = time.perf_counter()
        trainer.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        collecting += time.perf_counter() - middle
        scoring += middle - started
    trainer.eval_collector.get_data_struct()  # clears it, as evaluate() does
    return scoring, collecting


def measure(dataset, batch_sizes, repeats):
    rows = []
    for batch_size in batch_sizes:
        config = Config(model="SASRecAWR", dataset=dataset, config_dict={
            "refine_mechanism": "simple", "save_history": False, "show_progress": False,
            "state": "WARNING", "eval_batch_size": batch_size})
        built = build(config)
        trainer, data = built.trainer, built.valid_data
        collectors = {"recbole": Collector(config), "plugin": TopkCollector(config)}
        times = {name: [] for name in collectors}
        results = {}
        for round_ in range(repeats + 1):  # round 0 warms up
            for name in (("recbole", "plugin") if round_ % 2 == 0 else ("plugin", "recbole")):
                trainer.eval_collector = collectors[name]
                started = time.perf_counter()
                results[name] = trainer.evaluate(data, load_best_model=False)
                if round_:
                    times[name].append(time.perf_counter() - started)
        assert results["recbole"] == results["plugin"], (results["recbole"], results["plugin"])
        record = {"dataset": dataset, "users": data._dataset.user_num - 1,
                  "items": data._dataset.item_num - 1, "eval_batch_size": batch_size,
                  "batches": len(data)}
        for name in collectors:
            trainer.eval_collector = collectors[name]
            scoring, collecting = parts(trainer, data)
            record[f"{name}_pass_s"] = statistics.median(times[name])
            record[f"{name}_scoring_s"] = scoring
            record[f"{name}_collect_s"] = collecting
        record["ratio"] = record["recbole_pass_s"] / record["plugin_pass_s"]
        rows.append(record)
        print(json.dumps(record), flush=True)
    return rows


def markdown(records):
    lines = ["| dataset | eval_batch_size | pass, RecBole's collector s | of it: scoring / collect s | "
             "pass, plugin's s | of it: scoring / collect s | RecBole/plugin |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['dataset']} ({r['users']:,} users, {r['items']:,} items) | {r['eval_batch_size']} | "
                     f"{r['recbole_pass_s']:.2f} | {r['recbole_scoring_s']:.2f} / {r['recbole_collect_s']:.2f} | "
                     f"{r['plugin_pass_s']:.2f} | {r['plugin_scoring_s']:.2f} / {r['plugin_collect_s']:.2f} | "
                     f"{r['ratio']:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    records = []
    for dataset in args.datasets:
        records += measure(dataset, args.batch_sizes, args.repeats)
    write_report(args.out, records, markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
