"""Check a `CarDD_COCO` folder against the release's layout and JSON schema."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cardd.classes import CATEGORIES, SPLITS, annotation_file, image_folder
from cardd.data.layout import unsafe_file_name

#: How many examples of each kind of problem are listed; the rest are counted.
SHOW_PER_KIND = 5


@dataclass
class SplitStats:
    """Counts for one split."""

    images: int = 0
    instances: Counter = field(default_factory=Counter)  # class name -> count


@dataclass
class CheckReport:
    """What `check_dataset` found: per-split counts and problems by kind."""

    root: Path
    splits: dict[str, SplitStats] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def add(self, kind: str, message: str) -> None:
        self.problems[kind].append(message)

    def problem_lines(self, limit: int = SHOW_PER_KIND) -> list[str]:
        """Readable problem list: the first `limit` of each kind, then a count."""
        lines = []
        for kind, messages in self.problems.items():
            if not messages:
                continue
            lines.append(f"{kind}: {len(messages)}")
            lines.extend(f"  {m}" for m in messages[:limit])
            if len(messages) > limit:
                lines.append(f"  ... and {len(messages) - limit} more")
        return lines

    def table(self):
        """A rich table: images and instances per class per split."""
        from cardd.console import counts_table

        counts = {split: (stats.images, stats.instances) for split, stats in self.splits.items()}
        return counts_table(f"CarDD dataset at {self.root}", counts)


def categories_problem(categories: list) -> str | None:
    """Why a JSON's `categories` list is not CarDD's, else None.

    The order matters, not only the ids and names: mmdet numbers its labels in
    the JSON's order, while cardd names them in CarDD's, so a reordered list
    would give every detection the wrong name.
    """
    found = [
        (c.get("id"), c.get("name")) if isinstance(c, dict) else (None, None) for c in categories
    ]
    expected = [(c["id"], c["name"]) for c in CATEGORIES]
    if found == expected:
        return None
    if sorted(found, key=repr) == sorted(expected, key=repr):
        return f"categories in another order than CarDD's {expected}: {found}"
    return f"categories {found}, expected {expected}"


def dataset_categories_problem(ann_file: Path) -> str | None:
    """`categories_problem` of an annotation file (None when it cannot be read:
    the caller reports a missing or broken file its own way)."""
    try:
        with open(ann_file) as f:
            categories = json.load(f).get("categories")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(categories, list):
        return None
    problem = categories_problem(categories)
    return f"{ann_file}: {problem}; fix its `categories` list" if problem else None


def _check_polygons(segmentation, where: str, report: CheckReport) -> None:
    if isinstance(segmentation, dict):  # RLE: allowed by COCO, not used by CarDD
        if "counts" not in segmentation or "size" not in segmentation:
            report.add("bad polygon", f"{where}: RLE without counts/size")
        return
    if not isinstance(segmentation, list) or not segmentation:
        report.add("bad polygon", f"{where}: segmentation is not a non-empty list of polygons")
        return
    for polygon in segmentation:
        if (
            not isinstance(polygon, list)
            or len(polygon) < 6
            or len(polygon) % 2
            or not all(isinstance(v, (int, float)) for v in polygon)
        ):
            report.add("bad polygon", f"{where}: a polygon needs an even number (>= 6) of numbers")
            return


def check_split(root: Path, split: str, report: CheckReport, deep: bool = False) -> None:
    """Check one split's JSON and images, adding counts and problems to `report`."""
    ann_path = root / annotation_file(split)
    img_dir = root / image_folder(split)
    if not ann_path.is_file():
        report.add("missing annotation file", str(ann_path))
        return
    try:
        with open(ann_path) as f:
            coco = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        report.add("unreadable annotation file", f"{ann_path}: {error}")
        return
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        report.add(
            "unreadable annotation file", f"{ann_path}: not COCO (images/annotations/categories)"
        )
        return
    if not img_dir.is_dir():
        report.add("missing image folder", str(img_dir))

    problem = categories_problem(coco["categories"])
    if problem:
        report.add("wrong categories", f"{split}: {problem}")
    expected = {c["id"]: c["name"] for c in CATEGORIES}

    stats = SplitStats()
    images = {}
    for image in coco["images"]:
        image_id = image.get("id")
        if image_id in images:
            report.add("duplicate id", f"{split}: image id {image_id}")
            continue
        images[image_id] = image
        unsafe = unsafe_file_name(image.get("file_name"))
        if unsafe:
            name = image.get("file_name")
            report.add("unsafe file name", f"{split}: image {image_id} {name!r} {unsafe}")
            continue
        path = img_dir / image["file_name"]
        if not path.is_file():
            report.add("missing image", f"{split}: {path}")
        elif deep:
            _check_image_file(path, image, split, report)
    stats.images = len(images)

    seen_ann_ids = set()
    for ann in coco["annotations"]:
        ann_id = ann.get("id")
        where = f"{split}: annotation {ann_id}"
        if ann_id in seen_ann_ids:
            report.add("duplicate id", f"{split}: annotation id {ann_id}")
        seen_ann_ids.add(ann_id)
        image = images.get(ann.get("image_id"))
        if image is None:
            report.add("annotation of unknown image", f"{where} -> image_id {ann.get('image_id')}")
        category_id = ann.get("category_id")
        if category_id not in expected:
            report.add("bad category", f"{where}: category_id {category_id}")
        else:
            stats.instances[expected[category_id]] += 1
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            report.add("bad bbox", f"{where}: bbox {bbox!r} is not [x, y, w, h]")
        else:
            x, y, w, h = bbox
            if w <= 0 or h <= 0:
                report.add("bad bbox", f"{where}: non-positive size {bbox}")
            elif image is not None and (
                x < 0 or y < 0 or x + w > image["width"] + 1 or y + h > image["height"] + 1
            ):
                report.add(
                    "bad bbox",
                    f"{where}: {bbox} outside the {image['width']}x{image['height']} image",
                )
        _check_polygons(ann.get("segmentation"), where, report)
    report.splits[split] = stats


def _check_image_file(path: Path, image: dict, split: str, report: CheckReport) -> None:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.load()
            width, height = ImageOps.exif_transpose(img).size
    except Exception as error:  # PIL raises many kinds for broken files
        report.add("unreadable image", f"{split}: {path}: {error}")
        return
    if (width, height) != (image.get("width"), image.get("height")):
        report.add(
            "image size mismatch",
            f"{split}: {path.name} is {width}x{height}, JSON says "
            f"{image.get('width')}x{image.get('height')}",
        )


def check_dataset(root: Path, deep: bool = False) -> CheckReport:
    """Check all three splits of the `CarDD_COCO` folder `root`.

    Args:
        root: the folder holding `annotations/` and the split image folders.
        deep: also decode every image and compare its size with the JSON.
    """
    report = CheckReport(root=root)
    if not (root / "annotations").is_dir():
        report.add("not a CarDD_COCO folder", f"{root} has no annotations/ folder")
        return report
    for split in SPLITS:
        check_split(root, split, report, deep=deep)
    return report
