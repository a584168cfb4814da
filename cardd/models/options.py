"""`cardd download-weights`'s options, each declared once: light to import (the command
line reads them for `--help`); `cardd.models.pretrained` takes its defaults from here."""

from __future__ import annotations

from pathlib import Path

from cardd.core import options
from cardd.core.options import Option
from cardd.models.families import MODEL_NAMES, START_POINTS

WEIGHTS_MODEL = Option(
    "--model",
    "Which COCO weights, named with the config that starts from them: "
    + ", ".join(f"{point.model} ({point.config})" for point in START_POINTS) + ".",
    "choice",
    "dcn-plus",
    choices=MODEL_NAMES,
)
WEIGHTS_DEST = Option("--dest", "Folder to put the checkpoint in.", "path", Path("checkpoints"))
WEIGHTS_URL = Option(
    "--url", "Another address for the checkpoint (its name should carry the sha256 prefix)."
)
WEIGHTS_FORCE = options.FORCE.but(help="Download again even if a valid file is present.")
WEIGHTS_OPTIONS = (WEIGHTS_MODEL, WEIGHTS_DEST, WEIGHTS_URL, WEIGHTS_FORCE)
