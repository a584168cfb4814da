"""Check a dataset (the CarDD layout or a description file) against COCO's schema.

What is checked, for any classes: ids unique, categories well formed and the
same in every split, every annotation's category and image known, boxes inside
their images, polygons valid, file names safe and their images present (with
`deep`, decodable and of the size the JSON says).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import unsafe_file_name
from cardd.data.spec import DatasetSpec, SplitFiles
from cardd.structures.classes import SPLITS, ClassSet, annotation_file, image_folder

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

    root: Path | str
    splits: dict[str, SplitStats] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    classes: ClassSet | None = None  # the first split's, which the others must match

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
        from cardd.core.console import counts_table

        counts = {split: (stats.images, stats.instances) for split, stats in self.splits.items()}
        names = self.classes.names if self.classes is not None else ()
        return counts_table(f"dataset {self.root}", counts, names)


def categories_problem(categories: object, expected: ClassSet) -> str | None:
    """Why a split's `categories` differ from `expected` (another split's), else None.

    The order matters, not only the ids and names: mmdet numbers its labels in
    the file's order, so two splits in different orders would give one model's
    labels two meanings.
    """
    found = [
        (c.get("id"), c.get("name")) if isinstance(c, dict) else (None, None)
        for c in (categories if isinstance(categories, list) else [])
    ]
    wanted = [(c["id"], c["name"]) for c in expected.categories()]
    if found == wanted:
        return None
    if sorted(found, key=repr) == sorted(wanted, key=repr):
        return f"categories in another order than {wanted}: {found}"
    return f"categories {found[:12]}, expected {wanted[:12]}"


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


def check_split(files: SplitFiles, split: str, report: CheckReport, deep: bool = False) -> None:
    """Check one split's JSON and images, adding counts and problems to `report`."""
    ann_path, img_dir = files.annotations, files.images
    if not ann_path.is_file():
        report.add("missing annotation file", str(ann_path))
        return
    try:
        with open(ann_path, "rb") as f:
            coco = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError) as error:
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

    try:
        classes = ClassSet.from_categories(coco["categories"], split)
    except CarddError as error:
        report.add("bad categories", str(error))
        classes = None
    if classes is not None and report.classes is None:
        report.classes = classes
    elif classes is not None:
        problem = categories_problem(coco["categories"], report.classes)
        if problem:
            report.add("wrong categories", f"{split}: {problem} (as in the first split)")
    expected = {
        c["id"]: c["name"]
        for c in coco["categories"]
        if isinstance(c, dict) and isinstance(c.get("id"), int)
    }

    stats = SplitStats()
    images = {}
    for image in coco["images"]:
        if not isinstance(image, dict):
            report.add("bad image entry", f"{split}: {str(image)[:60]} is not an object")
            continue
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
        if not all(isinstance(image.get(k), int) and image[k] > 0 for k in ("width", "height")):
            report.add("bad image entry", f"{split}: image {image_id} has no width and height")
        path = img_dir / image["file_name"]
        if not path.is_file():
            report.add("missing image", f"{split}: {path}")
        elif deep:
            _check_image_file(path, image, split, report)
    stats.images = len(images)

    seen_ann_ids = set()
    for ann in coco["annotations"]:
        if not isinstance(ann, dict):
            report.add("bad annotation", f"{split}: {str(ann)[:60]} is not an object")
            continue
        ann_id = ann.get("id")
        where = f"{split}: annotation {ann_id}"
        if ann_id in seen_ann_ids:
            report.add("duplicate id", f"{split}: annotation id {ann_id}")
        seen_ann_ids.add(ann_id)
        if not isinstance(ann_id, int) or isinstance(ann_id, bool):
            report.add("bad annotation id", f"{where}: ids must be integers")
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
            elif (
                image is not None
                and all(isinstance(image.get(k), int) for k in ("width", "height"))
                and (x < 0 or y < 0 or x + w > image["width"] + 1 or y + h > image["height"] + 1)
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
    """Check the three splits of a folder in the CarDD layout (`annotations/`,
    `<split>2017/`): all three are expected.

    Args:
        root: the folder holding `annotations/` and the split image folders.
        deep: also decode every image and compare its size with the JSON.
    """
    report = CheckReport(root=root)
    if not (root / "annotations").is_dir():
        report.add("not a CarDD_COCO folder", f"{root} has no annotations/ folder")
        return report
    for split in SPLITS:
        files = SplitFiles(root / annotation_file(split), root / image_folder(split))
        check_split(files, split, report, deep=deep)
    return report


def check_spec(spec: DatasetSpec, deep: bool = False) -> CheckReport:
    """Check the splits a dataset description lists (and only those)."""
    report = CheckReport(root=spec.source)
    for split, files in spec.splits.items():
        check_split(files, split, report, deep=deep)
    return report
