"""Terminal output shared by the commands: one console setting, one per-class counts table."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence


def console():
    """A rich console; piped output (logs, CI) gets room for the nine-column class tables."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


#: Up to this many classes are columns; more are rows (a 25-class table stays readable).
CLASS_COLUMNS = 8


def counts_table(
    title: str, counts: Mapping[str, tuple[int, Mapping[str, int]]], names: Sequence[str]
):
    """Images and instances per class (`names`, in order) per split:
    `{split: (images, {class name: count})}`."""
    from rich.table import Table

    table = Table(title=title)
    if len(names) > CLASS_COLUMNS:
        table.add_column("", justify="left")
        for split in counts:
            table.add_column(split, justify="right")
        table.add_row("images", *(str(images) for images, _ in counts.values()))
        for name in names:
            table.add_row(name, *(str(per_class.get(name, 0)) for _, per_class in counts.values()))
        table.add_row("instances", *(str(sum(c.values())) for _, c in counts.values()))
        return table
    for column in ("split", "images", *names, "instances"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, (images, per_class) in counts.items():
        row = [str(per_class.get(name, 0)) for name in names]
        table.add_row(split, str(images), *row, str(sum(per_class.values())))
    return table
