"""`cardd reduce-data`: a consistent 1-in-N subset of a CarDD dataset for quick runs."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import unsafe_file_name, write_file
from cardd.data.layout import DATASET_DIR, staged_folder
from cardd.data.options import REDUCE_DST, REDUCE_EVERY, REDUCE_SRC
from cardd.structures.classes import CATEGORY_IDS, CLASSES, SPLITS, annotation_file, image_folder

_TRAILING_DIGITS = re.compile(r"(\d+)$")


def keeps(file_name: str, every: int) -> bool:
    """Whether an image survives: the number its file-name stem ends in divides by `every`.

    With `every=10` this is the original project's rule (names ending in `0.jpg`).
    Stems without trailing digits are dropped.
    """
    match = _TRAILING_DIGITS.search(Path(file_name).stem)
    return match is not None and int(match.group(1)) % every == 0


def reduce_split(coco: dict, every: int) -> dict:
    """The split's JSON with only kept images and their annotations; ids and categories kept."""
    images = [image for image in coco["images"] if keeps(image["file_name"], every)]
    kept_ids = {image["id"] for image in images}
    annotations = [ann for ann in coco["annotations"] if ann["image_id"] in kept_ids]
    return {**coco, "images": images, "annotations": annotations}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def reduce_dataset(
    src: Path = REDUCE_SRC.default,
    dst: Path = REDUCE_DST.default,
    every: int = REDUCE_EVERY.default,
    force: bool = False,
) -> dict[str, tuple[int, Counter]]:
    """Write `<dst>/CarDD_COCO` holding every `every`-th image of `<src>/CarDD_COCO`.

    Images are hard-linked where possible (copied otherwise); `src` is only read.

    Returns:
        Per split: (kept images, kept instances per class name).
    """
    if every < 1:
        raise CarddError(f"--every must be >= 1, got {every}")
    src_root, dst_root = src / DATASET_DIR, dst / DATASET_DIR
    if not (src_root / "annotations").is_dir():
        raise CarddError(f"no dataset at {src_root}: run `cardd download-data --dest {src}` first")
    names = dict(zip(CATEGORY_IDS, CLASSES, strict=True))
    summary: dict[str, tuple[int, Counter]] = {}
    with staged_folder(dst_root, force=force, source=src_root) as staging:
        (staging / "annotations").mkdir()
        for split in SPLITS:
            ann_path = src_root / annotation_file(split)
            if not ann_path.is_file():
                continue
            with open(ann_path) as f:
                reduced = reduce_split(json.load(f), every)
            out_images = staging / image_folder(split)
            out_images.mkdir()
            for image in reduced["images"]:
                problem = unsafe_file_name(image.get("file_name"))
                if problem:
                    raise CarddError(
                        f"{ann_path}: image {image.get('id')} file_name "
                        f"{image.get('file_name')!r} {problem}; nothing was written"
                    )
                source = src_root / image_folder(split) / image["file_name"]
                if not source.is_file():
                    raise CarddError(f"{source} is listed in {ann_path.name} but missing")
                target = out_images / image["file_name"]
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(source, target)
            write_file(staging / annotation_file(split), json.dumps(reduced))
            per_class = Counter(names.get(a["category_id"], "?") for a in reduced["annotations"])
            summary[split] = (len(reduced["images"]), per_class)
    return summary
