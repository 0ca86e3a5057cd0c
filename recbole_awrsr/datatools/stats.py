"""Dataset statistics after RecBole's own loading and filtering, beside the paper's Table 1."""

import warnings

from recbole_awrsr import Config, create_dataset

#: AWRSR paper, Table 1: (users, items, interactions), as printed (rounded)
PAPER_TABLE1 = {
    "ml-1m": (6.0e3, 3.4e3, 1.0e6),
    "beauty": (52.0e3, 57.2e3, 0.4e6),
    "anime": (73.5e3, 12.2e3, 1.0e6),
}


def dataset_stats(dataset, data_path="dataset_atomic", config_dict=None):
    """Users, items, interactions and density of ``dataset`` as RecBole loads it (after filtering).

    The dataset goes through the plugin's ``Config`` (so ``properties/dataset/<name>.yaml``
    applies) and ``create_dataset``; RecBole counts the padding id 0, hence the ``- 1``.
    """

    settings = {"data_path": str(data_path), "state": "ERROR", **(config_dict or {})}
    config = Config(model="SASRec", dataset=dataset, config_dict=settings)
    with warnings.catch_warnings():
        # RecBole's fillna(inplace=True) warns on pandas 2.x; nothing to act on here
        warnings.simplefilter("ignore", FutureWarning)
        data = create_dataset(config)
    users, items, interactions = data.user_num - 1, data.item_num - 1, data.inter_num
    return {"users": users, "items": items, "interactions": interactions,
            "density": interactions / (users * items) if users and items else 0.0}


def format_stats(dataset, stats):
    """A small table: this copy's figures, and the paper's where Table 1 has the dataset."""
    paper = PAPER_TABLE1.get(dataset)
    lines = [f"{dataset} after RecBole's filtering (properties/dataset/{dataset}.yaml)",
             f"{'':<13}{'here':>12}{'paper (Table 1)':>18}"]
    for index, key in enumerate(("users", "items", "interactions")):
        if paper is None:
            theirs = "-"
        elif key == "interactions":
            theirs = f"{paper[index] / 1e6:.1f}M"
        else:
            theirs = f"{paper[index] / 1e3:.1f}k"
        lines.append(f"{key:<13}{stats[key]:>12,}{theirs:>18}")
    paper_density = f"~{paper[2] / (paper[0] * paper[1]):.4%}" if paper else "-"
    lines.append(f"{'density':<13}{stats['density']:>12.4%}{paper_density:>18}")
    if paper:
        lines.append("(paper figures are rounded; its density is computed from them)")
    return "\n".join(lines)
