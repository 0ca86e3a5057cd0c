"""``recbole-awrsr report``: every grid's tables, and the results document, from the CSVs alone.

A grid is a folder under ``--results`` (default ``docs/results``) with a ``results.csv``
written by :mod:`recbole_awrsr.compare`. For each one the command rewrites
``tables.md``, ``summary.csv`` and ``validation.png`` (what ``compare --report-only``
does for one grid), then fills the generated blocks of ``--document`` (default
``docs/results.md``). A block is a pair of marker lines in the Markdown::

    <!-- report: beauty-variants/choice -->
    (whatever is here is replaced)
    <!-- /report -->

naming a grid folder and a section of :func:`recbole_awrsr.tables.report_sections`
(``validation``, ``choice``, ``legend``, ``table2``, ``table2-L<n_layers>``, ``table3``,
``users``). A hyperparameter search (a folder with the ``trials.csv`` of
``recbole-awrsr tune``, such as ``tune/beauty``) gets ``search.md`` and one section,
``search`` (:func:`recbole_awrsr.tables.search_markdown`): ``<!-- report: tune/beauty/search -->``.
The prose around the blocks is the authors'; the numbers inside them always come from the
runs, so the document cannot drift from its CSVs. Nothing is trained.
"""

import argparse
import os
import re
import sys

import pandas as pd
import yaml

from recbole_awrsr import cli
from recbole_awrsr.compare import read_results, write_report
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.files import write_text
from recbole_awrsr.tables import search_markdown, searched_keys

# a grid may be a nested folder (tune/beauty): the section is what follows the last '/'
START = re.compile(r"^<!-- report: (?P<grid>\S+)/(?P<section>[\w-]+) -->\s*$")
END = "<!-- /report -->"


def grids(results):
    """The grid folders under ``results`` (those with a ``results.csv``), sorted by name."""
    if not os.path.isdir(results):
        raise ConfigurationError(f"--results: no such folder: {results}")
    return sorted(name for name in os.listdir(results)
                  if os.path.isfile(os.path.join(results, name, "results.csv")))


def searches(results):
    """The search folders under ``results`` (those with a ``trials.csv``, one or two levels
    down, such as ``tune/beauty``), as sorted paths relative to ``results``."""
    found = []
    for top in sorted(os.listdir(results)):
        folder = os.path.join(results, top)
        below = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for path in [top] + [f"{top}/{name}" for name in below]:
            if os.path.isfile(os.path.join(results, path, "trials.csv")):
                found.append(path)
    return found


def chosen_trial(trials, folder):
    """The id of the trial whose searched values ``folder/best.yaml`` holds (None without one).

    ``tune`` writes ``best.yaml`` only when every trial has ended; its searched keys are
    :func:`~recbole_awrsr.tables.searched_keys`.
    """
    path = os.path.join(folder, "best.yaml")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        best = yaml.safe_load(handle) or {}
    searched = searched_keys(trials)
    for row in trials.to_dict("records"):
        if all(_same(row[key], best.get(key)) for key in searched):
            return str(row["trial_id"])
    raise ConfigurationError(f"{path}: no trial of trials.csv has its searched values "
                             f"({', '.join(searched)})")


def _same(recorded, chosen):
    """Whether a ``trials.csv`` value (read back as text or a float) is ``best.yaml``'s."""
    try:
        return abs(float(recorded) - float(chosen)) <= 1e-9 * max(1.0, abs(float(chosen)))
    except (TypeError, ValueError):
        return str(recorded) == str(chosen)


def search_report(folder):
    """Write ``folder/search.md`` from its ``trials.csv`` (and ``best.yaml``); returns the Markdown."""
    trials = pd.read_csv(os.path.join(folder, "trials.csv"))
    text = search_markdown(trials, chosen_trial(trials, folder))
    write_text(os.path.join(folder, "search.md"), f"# Search\n\n{text}\n")
    return text


def fill_blocks(text, sections, source="document"):
    """``text`` with every report block's content replaced by its generated section.

    ``sections``: ``{grid: {section name: Markdown}}``. Returns ``(new text, blocks
    filled)``. A block naming an unknown grid or section, a start marker without its
    end, or an end marker without a start raises
    :class:`~recbole_awrsr.errors.ConfigurationError` naming ``source`` and the line.
    """
    lines = text.split("\n")
    out, filled, index = [], 0, 0
    while index < len(lines):
        line = lines[index]
        if line.strip() == END:
            raise ConfigurationError(f"{source}, line {index + 1}: '{END}' without a "
                                     f"'<!-- report: GRID/SECTION -->' line before it")
        match = START.match(line.strip())
        if not match:
            if line.strip().startswith("<!-- report:"):
                raise ConfigurationError(f"{source}, line {index + 1}: expected "
                                         f"'<!-- report: GRID/SECTION -->', found '{line.strip()}'")
            out.append(line)
            index += 1
            continue
        grid, section = match["grid"], match["section"]
        end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == END), None)
        nested = next((j for j in range(index + 1, end or len(lines))
                       if START.match(lines[j].strip())), None)
        if end is None or nested is not None:
            raise ConfigurationError(f"{source}, line {index + 1}: the block {grid}/{section} "
                                     f"has no '{END}' line before the next block or the end")
        if grid not in sections:
            known = ", ".join(sorted(sections)) or "none"
            raise ConfigurationError(f"{source}, line {index + 1}: no grid '{grid}' with a "
                                     f"results.csv or trials.csv (grids: {known})")
        if section not in sections[grid]:
            raise ConfigurationError(f"{source}, line {index + 1}: grid '{grid}' has no section "
                                     f"'{section}' (it has: {', '.join(sections[grid])})")
        out += [line, sections[grid][section], lines[end]]
        filled += 1
        index = end + 1
    return "\n".join(out), filled


def report(results="docs/results", document="docs/results.md", alpha=0.05):
    """Rewrite every grid's tables under ``results`` and fill ``document``'s blocks.

    Returns ``{grid: number of runs}``; ``document`` may be None (grids only). The
    document is rewritten atomically, and only when every block could be filled.
    """
    sections, runs = {}, {}
    for grid in grids(results):
        folder = os.path.join(results, grid)
        frame = read_results(os.path.join(folder, "results.csv"))
        runs[grid] = len(frame)
        sections[grid] = write_report(folder, frame, alpha)
        print(f"{grid}: {len(frame)} runs -> {os.path.join(folder, 'tables.md')}", file=sys.stderr)
    for search in searches(results):
        folder = os.path.join(results, search)
        sections[search] = {"search": search_report(folder)}
        print(f"{search}: search -> {os.path.join(folder, 'search.md')}", file=sys.stderr)
    if document:
        if not os.path.isfile(document):
            raise ConfigurationError(f"--document: no such file: {document}")
        with open(document, encoding="utf-8") as handle:
            text = handle.read()
        text, filled = fill_blocks(text, sections, document)
        write_text(document, text)
        print(f"{document}: {filled} blocks filled", file=sys.stderr)
    return runs


def main(argv=None):
    """Entry point of ``recbole-awrsr report`` and ``python -m recbole_awrsr.report``."""
    if argv is None:
        return cli.main(["report", *sys.argv[1:]])
    parser = argparse.ArgumentParser(
        prog="recbole-awrsr report",
        description="Rewrite every grid's tables.md, summary.csv and validation.png from its "
        "results.csv, and fill the <!-- report: GRID/SECTION --> blocks of the results document. "
        "Trains nothing.")
    parser.add_argument("--results", default="docs/results",
                        help="folder of grid folders (default docs/results)")
    parser.add_argument("--document", default="docs/results.md",
                        help="Markdown with report blocks (default docs/results.md); '' for none")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    args = parser.parse_args(argv)
    report(args.results, args.document or None, args.alpha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
