"""Terminal output shared by the commands: one console setting, one per-class counts table."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from cardd.classes import CLASSES


def console():
    """A rich console; piped output (logs, CI) gets room for the nine-column class tables."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def counts_table(title: str, counts: Mapping[str, tuple[int, Mapping[str, int]]]):
    """Images and instances per class per split: `{split: (images, {class name: count})}`."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("split", "images", *CLASSES, "instances"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, (images, per_class) in counts.items():
        row = [str(per_class.get(name, 0)) for name in CLASSES]
        table.add_row(split, str(images), *row, str(sum(per_class.values())))
    return table
