"""`cardd init-data DIR`: write the dataset description of a folder of COCO data.

It finds each split's annotation file and image folder in the layouts people
have, and proves each image folder by finding the JSON's first images in it:

* the CarDD release's: `annotations/instances_<split>2017.json`, `<split>2017/`;
* Roboflow's COCO export: `<split>/_annotations.coco.json` with the images beside
  it (`valid/` is the val split);
* any `annotations/*.json` (or `*.json` at the top) whose name says the split
  (`train`, `val`/`valid`, `test`), with images in `images/<split>/`, `<split>/`,
  `<split>2017/`, `images/` or the top folder.

The description (`cardd.data.spec`) is written beside them, paths relative to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import unsafe_file_name, write_file
from cardd.data.spec import SPLIT_NAMES, DatasetSpec, SplitFiles, load_data_file

DEFAULT_NAME = "cardd-data.yaml"
_SPLIT_WORDS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def _first_file_names(ann_file: Path, count: int = 3) -> list[str]:
    try:
        with open(ann_file, "rb") as f:
            coco = json.load(f)
    except (OSError, ValueError):
        return []
    images = coco.get("images") if isinstance(coco, dict) else None
    if not isinstance(images, list):
        return []
    names = [i.get("file_name") for i in images[:count] if isinstance(i, dict)]
    # a name that could lead outside a folder never probes for files there
    return [n for n in names if unsafe_file_name(n) is None]


def _image_folder(ann_file: Path, candidates: list[Path]) -> Path | None:
    """The first candidate folder that holds the annotation file's first images."""
    names = _first_file_names(ann_file)
    for folder in candidates:
        if names and folder.is_dir() and all((folder / n).is_file() for n in names):
            return folder
    return None


def _split_of(name: str) -> str | None:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    for split, aliases in _SPLIT_WORDS.items():
        if words & set(aliases) or any(name.lower().endswith(f"{a}2017") for a in aliases):
            return split
    return None


def find_splits(folder: Path) -> dict[str, SplitFiles]:
    """Each split's files in `folder`, by the layouts in the module docstring."""
    found: dict[str, SplitFiles] = {}
    for split in SPLIT_NAMES:
        for word in _SPLIT_WORDS[split]:  # Roboflow
            ann = folder / word / "_annotations.coco.json"
            if ann.is_file() and split not in found:
                images = _image_folder(ann, [ann.parent])
                if images is not None:
                    found[split] = SplitFiles(ann, images)
    jsons = sorted((folder / "annotations").glob("*.json")) + sorted(folder.glob("*.json"))
    for ann in jsons:
        split = _split_of(ann.stem)
        if split is None or split in found:
            continue
        words = _SPLIT_WORDS[split]
        candidates = [folder / "images" / w for w in words] + [folder / w for w in words]
        candidates += [folder / f"{w}2017" for w in words] + [folder / "images", folder]
        images = _image_folder(ann, candidates)
        if images is not None:
            found[split] = SplitFiles(ann, images)
    return {split: found[split] for split in SPLIT_NAMES if split in found}


def init_data(folder: Path, out: Path | None = None, force: bool = False) -> DatasetSpec:
    """Write the description of `folder`'s dataset to `out` (default
    `<folder>/cardd-data.yaml`) and return it as read back, classes checked.

    Raises:
        CarddError: no train split found, splits that disagree on their categories,
            or `out` exists (without `force`).
    """
    import os

    import yaml

    if not folder.is_dir():
        raise CarddError(f"{folder} is not a folder")
    out = out if out is not None else folder / DEFAULT_NAME
    if out.exists() and not force:
        raise CarddError(f"{out} exists: pass --force to replace it")
    splits = find_splits(folder)
    if "train" not in splits:
        raise CarddError(
            f"no COCO train split found in {folder}: expected e.g. annotations/train.json "
            "with images in images/train/ (or Roboflow's train/_annotations.coco.json); "
            "a YOLO dataset? `cardd convert yolo` it first"
        )
    DatasetSpec(source=str(folder), splits=splits).classes()  # the splits must agree
    base = out.parent.resolve()  # the folder it lands in: a link at `out` is replaced

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()

    description = {
        split: {"annotations": relative(files.annotations), "images": relative(files.images)}
        for split, files in splits.items()
    }
    write_file(
        out,
        f"# cardd dataset description of {folder.resolve()} (cardd init-data).\n"
        "# Paths are relative to this file; the classes are the annotation files'\n"
        "# categories. A split left out does not exist.\n"
        + yaml.safe_dump(description, sort_keys=False),
    )
    return load_data_file(out)
