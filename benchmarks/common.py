"""What the benchmark scripts share: the batches they time, the losses they compare, and
where their results go."""

import json
import os
import sys
from pathlib import Path


def first(loader, count):
    """The first ``count`` batches of a loader, materialised (the timing excludes loading)."""
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def torch_loss(hidden, weight, targets):
    """torch's cross-entropy of the scores ``hidden @ weight.T`` (the code before session 7),
    with the signature of :func:`recbole_awrsr.model.cross_entropy.linear_cross_entropy`."""
    import torch.nn.functional as F

    return F.cross_entropy(hidden @ weight.t(), targets)


def lean_loss(hidden, weight, targets):
    """The plugin's lean cross-entropy of the whole scores array (session 7's default)."""
    from recbole_awrsr.model.cross_entropy import cross_entropy

    return cross_entropy(hidden @ weight.t(), targets)


def float32_linear_loss(hidden, weight, targets):
    """The block-wise cross-entropy kept in float32 under autocast (the encoder alone in
    bfloat16), where the plugin's scores in bfloat16; tried in session 12."""
    import torch

    from recbole_awrsr.model.cross_entropy import linear_cross_entropy

    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return linear_cross_entropy(hidden.float(), weight.float(), targets)


def converted(datasets):
    """The datasets of ``datasets`` that have atomic files under ``dataset_atomic/`` (ml-100k
    ships inside RecBole); the others are named on stderr as skipped."""
    found = []
    for dataset in datasets:
        if dataset == "ml-100k" or os.path.isfile(f"dataset_atomic/{dataset}/{dataset}.inter"):
            found.append(dataset)
        else:
            print(f"skipping {dataset}: not converted (python -m recbole_awrsr.data convert ...)",
                  file=sys.stderr)
    return found


def write_report(out, records, table):
    """Print the Markdown ``table``; with ``out``, also write ``results.json`` (the raw
    records) and ``table.md`` there."""
    print(table)
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(records, indent=1) + "\n")
        (out / "table.md").write_text(table + "\n")
