"""Converters from published dataset files to RecBole atomic files, one module per source format.

:func:`convert` is the single entry point: it maps a dataset name to its
converter. Known names: ``ml-1m``, ``anime``, ``pairs``, ``sequence`` and every Amazon 2014
category by its lower-case name (``beauty``, ``sports_and_outdoors``, ...;
``sports``, ``toys`` and ``home`` are accepted as the usual short names).
``pairs`` and ``sequence`` are the generic formats (``user item`` per line; ``user item
item ...`` per line), usually written under a name of the user's choice (``--name``).
"""

from recbole_awrsr.datatools.convert import amazon, anime, movielens, pairs, sequence
from recbole_awrsr.errors import DATASET_NAME_RULE, ConversionError, is_dataset_name

#: Amazon 2014 per-category file names (``ratings_<Category>.csv``, ``reviews_<Category>_5.json.gz``)
AMAZON_CATEGORIES = (
    "Amazon_Instant_Video", "Apps_for_Android", "Automotive", "Baby", "Beauty", "Books",
    "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
    "Digital_Music", "Electronics", "Grocery_and_Gourmet_Food", "Health_and_Personal_Care",
    "Home_and_Kitchen", "Kindle_Store", "Movies_and_TV", "Musical_Instruments",
    "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Sports_and_Outdoors",
    "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
)
AMAZON_ALIASES = {"sports": "Sports_and_Outdoors", "toys": "Toys_and_Games", "home": "Home_and_Kitchen"}
OTHER_DATASETS = ("ml-1m", "anime", "pairs", "sequence")


def amazon_category(dataset):
    """The Amazon 2014 category a dataset name stands for, or None."""
    key = dataset.lower().replace("-", "_")
    if key in AMAZON_ALIASES:
        return AMAZON_ALIASES[key]
    return next((c for c in AMAZON_CATEGORIES if c.lower() == key), None)


def known_datasets():
    """Every dataset name :func:`convert` accepts (aliases included)."""
    return list(OTHER_DATASETS) + [c.lower() for c in AMAZON_CATEGORIES] + sorted(AMAZON_ALIASES)


def check_dataset(dataset):
    """Raise :class:`ConversionError` for a dataset name no converter knows."""
    if dataset not in OTHER_DATASETS and amazon_category(dataset) is None:
        raise ConversionError(
            f"dataset name '{dataset}'", "no converter knows this name",
            f"one of {', '.join(OTHER_DATASETS)}, or an Amazon 2014 category "
            f"({', '.join(c.lower() for c in AMAZON_CATEGORIES)}; short names "
            f"{', '.join(sorted(AMAZON_ALIASES))})")


def convert(dataset, input_path, output_dir="dataset_atomic", name=None, drop_unrated=False,
            input_format=None):
    """Convert ``input_path`` for ``dataset`` into ``<output_dir>/<name>/`` (``name``: ``dataset``).

    ``drop_unrated`` (anime) drops -1 ratings; ``input_format`` (Amazon) forces
    ``ratings``, ``reviews`` or ``sequence`` instead of guessing from the file name.
    Returns the finished :class:`~recbole_awrsr.datatools.convert.writer.DatasetWriter`
    (``.inter.rows``, ``.item``, ``.written``). Raises :class:`ConversionError`;
    the output folder is then unchanged.
    """
    check_dataset(dataset)
    name = name or dataset
    if not is_dataset_name(name):
        raise ConversionError(input_path, f"--name {name!r} is not a dataset name (it becomes "
                              f"<output-dir>/<name>/<name>.inter)", DATASET_NAME_RULE)
    if drop_unrated and dataset != "anime":
        raise ConversionError(input_path, "--drop-unrated applies to anime only", "DATASET anime")
    if input_format and amazon_category(dataset) is None:
        raise ConversionError(input_path, "--format applies to Amazon categories only",
                              "an Amazon 2014 category as DATASET")
    if dataset == "ml-1m":
        return movielens.convert(input_path, output_dir, name)
    if dataset == "anime":
        return anime.convert(input_path, output_dir, name, drop_unrated=drop_unrated)
    if dataset == "pairs":
        return pairs.convert(input_path, output_dir, name)
    if dataset == "sequence":
        # the same reader as an Amazon category's --format sequence: one implementation, two doors
        return sequence.convert(input_path, output_dir, name)
    return amazon.convert(input_path, output_dir, name, amazon_category(dataset), input_format)


__all__ = ["ConversionError", "convert", "check_dataset", "known_datasets", "amazon_category"]
