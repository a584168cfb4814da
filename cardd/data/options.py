"""The data commands' options (`cardd download-data`, `check-data`, `reduce-data`,
`synth-data`, `init-data`, `convert yolo`), each declared once: light to import (the
command line reads them for `--help`); the library functions' defaults are theirs."""

from __future__ import annotations

from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

# `cardd download-data`
DOWNLOAD_ZIP = Option("--zip", "A release zip already on disk (offline).", "file", dest="zip_path")
DOWNLOAD_URL = Option("--url", "A mirror of the release zip, instead of Google Drive.")
DOWNLOAD_DEST = Option("--dest", "Folder to hold CarDD_COCO/.", "path", Path("data"))
DOWNLOAD_DATASET = Option(
    "--dataset",
    "carparts: Ultralytics' Carparts-Seg (23 parts, for cardd assess --parts-model), into "
    "DEST/carparts-seg (YOLO) and DEST/carparts (COCO).",
    "choice",
    "cardd",
    choices=("cardd", "carparts"),
)
DOWNLOAD_KEEP_SOD = Option("--keep-sod", "Also extract CarDD_SOD/ (unused by cardd).", "flag")
DOWNLOAD_FORCE = options.FORCE.but(
    help="Replace an existing <dest>/CarDD_COCO (from the zip downloaded earlier, if any)."
)
DOWNLOAD_REDOWNLOAD = Option(
    "--redownload", "Fetch the release zip again, then replace the dataset.", "flag"
)
DOWNLOAD_OPTIONS = (
    DOWNLOAD_ZIP, DOWNLOAD_URL, DOWNLOAD_DEST, DOWNLOAD_DATASET, DOWNLOAD_KEEP_SOD,
    DOWNLOAD_FORCE, DOWNLOAD_REDOWNLOAD,
)  # fmt: skip

# `cardd check-data`
CHECK_ROOT = options.DATA_ROOT.but(flag="--root", default=Path("data/CarDD_COCO"), dest=None)
CHECK_DEEP = Option("--deep", "Also decode every image and compare its size.", "flag")
CHECK_OPTIONS = (CHECK_ROOT, options.DATA, CHECK_DEEP)

# `cardd reduce-data`
REDUCE_SRC = Option(
    "--src", "Folder holding the source CarDD_COCO/ (only read).", "path", Path("data")
)
REDUCE_DST = Option(
    "--dst", "Folder to write the subset's CarDD_COCO/ into.", "path", Path("small_data")
)
REDUCE_EVERY = Option(
    "--every", "Keep images whose numeric file-name stem divides by N.", "int", 10, low=1
)
REDUCE_FORCE = options.FORCE.but(help="Replace an existing <dst>/CarDD_COCO.")
REDUCE_OPTIONS = (REDUCE_SRC, REDUCE_DST, REDUCE_EVERY, REDUCE_FORCE)

# `cardd synth-data`
SYNTH_DEST = Option("--dest", "Folder to write CarDD_COCO/ into.", "path", Path("data/synthetic"))
SYNTH_IMAGES = Option("--images", "Photos to make (over train, val and test).", "int", 24, low=6)
SYNTH_SEED = Option("--seed", "Random seed: the same seed makes the same dataset.", "int", 0)
SYNTH_SIZE = Option(
    "--size", "Make every image WxH pixels (default: small, 256-352 px).", "size", metavar="WxH"
)
SYNTH_PARTS = Option(
    "--parts",
    "Annotate a car's parts (fender, front door, rear door, wheel) instead of the damage "
    "drawn on them: data for a parts model (cardd assess --parts-model).",
    "flag",
)
SYNTH_FORCE = options.FORCE.but(help="Replace an existing <dest>/CarDD_COCO.")
SYNTH_OPTIONS = (SYNTH_DEST, SYNTH_IMAGES, SYNTH_SEED, SYNTH_SIZE, SYNTH_PARTS, SYNTH_FORCE)

# `cardd init-data` (beside its FOLDER argument)
INIT_OUT = Option("--out", "Where to write it. Default: FOLDER/cardd-data.yaml", "path")
INIT_FORCE = options.FORCE.but(help="Replace an existing description file.")
INIT_OPTIONS = (INIT_OUT, INIT_FORCE)

# `cardd convert yolo` (beside SOURCE and OUT)
CONVERT_SKIP_BAD = Option("--skip-bad", "Leave out bad label lines (listed) and go on.", "flag")
CONVERT_FORCE = options.FORCE.but(help="Replace an existing OUT folder.")
CONVERT_OPTIONS = (CONVERT_SKIP_BAD, CONVERT_FORCE)
