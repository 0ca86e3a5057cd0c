"""Search spaces from RecBole's params-file format, one parameter per line.

The same file serves RecBole's hyperopt tuner and :mod:`recbole_awrsr.tune` (Ray)::

    learning_rate loguniform -9.2 -4.6     # natural-log bounds: exp(-9.2) .. exp(-4.6)
    hidden_size choice [32, 64, 128]
    hidden_dropout_prob uniform 0.1 0.5
    weight_decay quniform 0 0.001 0.0001   # low high q
"""

import ast
import math
from dataclasses import dataclass

from recbole_awrsr.errors import ParamsFileError

#: distribution name -> number of numbers after it (choice takes one list instead)
DISTRIBUTIONS = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3}


@dataclass(frozen=True)
class Param:
    """One searched key: ``kind`` is a :data:`DISTRIBUTIONS` name, ``args`` its values."""

    name: str
    kind: str
    args: tuple

    def lowest(self):
        """The first value the key can take: a choice's first option, a range's low end
        (``loguniform``: exp of its natural-log bound)."""
        if self.kind == "loguniform":
            return math.exp(self.args[0])
        return self.args[0]


def parse_params(text, source="<params>"):
    """Read RecBole's params-file format into ``{name: Param}``.

    Lines are ``name kind values``; blank lines and ``#`` comments are skipped.
    ``loguniform`` bounds are natural logarithms, as in RecBole/hyperopt.
    """
    params = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue

        def fail(why, line=raw.strip(), number=number):
            raise ParamsFileError(f"{source}:{number}: {why} (line: '{line}')")

        parts = line.split(None, 2)
        if len(parts) < 3:
            fail("expected 'name kind values', e.g. 'learning_rate loguniform -9.2 -4.6'")
        name, kind, values = parts
        if kind not in DISTRIBUTIONS:
            fail(f"unknown kind '{kind}': use one of {', '.join(DISTRIBUTIONS)}")
        if name in params:
            fail(f"'{name}' is already searched on an earlier line")
        if kind == "choice":
            try:
                options = ast.literal_eval(values)
            except (ValueError, SyntaxError):
                fail("choice needs a Python list of literals, e.g. [32, 64]")
            if not isinstance(options, (list, tuple)) or not options:
                fail("choice needs a non-empty list, e.g. [32, 64]")
            args = tuple(options)
        else:
            numbers = values.split()
            if len(numbers) != DISTRIBUTIONS[kind]:
                fail(f"{kind} needs {DISTRIBUTIONS[kind]} numbers "
                     f"({'low high q' if kind == 'quniform' else 'low high'})")
            try:
                args = tuple(float(number) for number in numbers)
            except ValueError:
                fail(f"{kind} needs numbers, got '{values}'")
            if args[0] >= args[1]:
                fail(f"{kind} needs low < high, got {args[0]} and {args[1]}")
            if kind == "quniform" and args[2] <= 0:
                fail(f"quniform needs q > 0, got {args[2]}")
        params[name] = Param(name, kind, args)
    if not params:
        raise ParamsFileError(f"{source}: no parameter to search (every line empty or a comment)")
    return params


def read_params_file(path):
    """:func:`parse_params` of a file; a missing file is a :class:`ParamsFileError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ParamsFileError(f"cannot read params file {path}: {error.strerror}") from None
    return parse_params(text, source=path)


def search_space(params, grid=False):
    """Ray Tune's search space for parsed params.

    With ``grid`` every ``choice`` becomes a grid axis (each value tried, times
    ``num_samples``), as in the paper's grid search; continuous kinds are sampled.
    """
    from ray import tune

    space = {}
    for name, param in params.items():
        if param.kind == "choice":
            values = list(param.args)
            space[name] = tune.grid_search(values) if grid else tune.choice(values)
        elif param.kind == "uniform":
            space[name] = tune.uniform(*param.args)
        elif param.kind == "loguniform":
            low, high = param.args
            space[name] = tune.loguniform(math.exp(low), math.exp(high))
        else:
            space[name] = tune.quniform(*param.args)
    return space
