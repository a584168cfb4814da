"""The six CarDD damage classes: names, category ids and colours.

Their one source is `metainfo` in `configs/_base_/cardd.py`, which every config
inherits (mmengine configs cannot import project modules); this module reads
it with `ast.literal_eval`, without importing mmengine. The dataset tools check
the JSON against `CATEGORIES`, and inference maps labels to category ids here.
"""

from __future__ import annotations

import ast

from cardd.configs import config_dir


def _read_metainfo() -> dict:
    path = config_dir() / "_base_" / "cardd.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "metainfo" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} defines no literal `metainfo`")


_METAINFO = _read_metainfo()

#: Class names exactly as in the CarDD JSON (with spaces), in category-id order.
CLASSES: tuple[str, ...] = tuple(_METAINFO["classes"])

#: CarDD category ids: 1..6 in the order of `CLASSES`.
CATEGORY_IDS: tuple[int, ...] = tuple(range(1, len(CLASSES) + 1))

#: One fixed RGB colour per class (from the config, see `_read_metainfo`).
PALETTE: tuple[tuple[int, int, int], ...] = tuple(tuple(colour) for colour in _METAINFO["palette"])

#: `metainfo` as MMDetection datasets and visualizers take it.
METAINFO: dict = {"classes": CLASSES, "palette": PALETTE}

#: The `categories` list of a CarDD COCO JSON.
CATEGORIES: list[dict] = [
    {"id": cid, "name": name} for cid, name in zip(CATEGORY_IDS, CLASSES, strict=True)
]

#: The three splits as they are named in the release.
SPLITS: tuple[str, ...] = ("train", "val", "test")


def label_to_category_id(label: int) -> int:
    """Map a model's 0-based label index to the CarDD category id."""
    return CATEGORY_IDS[label]


def annotation_file(split: str) -> str:
    """Relative path of a split's COCO JSON inside a `CarDD_COCO` folder."""
    return f"annotations/instances_{split}2017.json"


def image_folder(split: str) -> str:
    """Relative path of a split's image folder inside a `CarDD_COCO` folder."""
    return f"{split}2017"
