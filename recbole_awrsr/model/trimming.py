"""Skipping padding: run a right-padded batch as groups of rows cut to their longest row.

RecBole pads every sequence on the right to ``MAX_ITEM_LIST_LENGTH`` = n. A row of
length L only needs positions 0..L-1: the causal mask keeps padding out of every
real position, and every model here is prefix-consistent. Sorting a batch by
length and cutting each group of rows to its longest row therefore changes no
output at a real position, and saves work that grows with n (projections,
feed-forward), n^2 (attention) and n^3 (refinement).
"""

import torch
import torch.nn.functional as F

from recbole_awrsr.errors import ConfigurationError, is_number

#: groups per batch when ``length_groups`` is unset (~), by device type. On a CPU the
#: padding saved pays for the extra, smaller operations; on a GPU a step is bound by
#: kernel launches, and every group launches the whole encoder again (measured in
#: benchmarks/README.md, "On a GPU").
AUTO_GROUPS = {"cpu": 4}


def auto_groups(groups, device):
    """``groups`` itself, or for ``None`` the number :data:`AUTO_GROUPS` gives ``device`` (else 1)."""
    if groups is not None:
        return groups
    return AUTO_GROUPS.get(torch.device(device).type, 1)


def length_groups(lengths, groups):
    """Rows of a batch in ``groups`` sets of similar length: (B,) -> [(rows (b,), L), ...].

    ``rows`` holds batch indices (``None`` for the whole batch when ``groups`` is 1),
    L the longest length among them: the positions the group needs.
    """
    if groups <= 1 or lengths.numel() < 2 * groups:
        return [(None, int(lengths.max()))]
    order = torch.argsort(lengths)
    return [(rows, int(lengths[rows].max())) for rows in order.chunk(groups)]


def select(tensor, rows):
    """``tensor[rows]``, or ``tensor`` itself for ``rows = None``."""
    return tensor if rows is None else tensor[rows]


def reassemble(parts, groups, width=None):
    """Undo :func:`length_groups`: per-group outputs back in batch order.

    ``parts``: outputs (b, ...) of the groups, in order. With ``width`` the parts
    are (b, L, d) and are zero-padded back to (b, width, d) first.
    """
    if width is not None:
        parts = [F.pad(part, (0, 0, 0, width - part.size(1))) for part in parts]
    if len(parts) == 1 and groups[0][0] is None:
        return parts[0]
    order = torch.cat([rows for rows, _ in groups])
    return torch.cat(parts)[torch.argsort(order)]


def check_length_groups(config):
    """Raise ConfigurationError, with the fix, unless ``length_groups`` is unset (auto) or a positive integer."""
    groups = config["length_groups"]
    if groups is not None and (not is_number(groups) or groups < 1):
        raise ConfigurationError(
            f"length_groups must be a positive integer or ~ (4 on a CPU, 1 on a GPU), got "
            f"{groups!r}: 1 cuts each batch to its longest row, k > 1 sorts the rows by "
            f"length into k groups first."
        )
