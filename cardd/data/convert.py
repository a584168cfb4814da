"""`cardd convert yolo`: a YOLO dataset (Ultralytics, Roboflow exports) -> COCO, checked.

The source is read as Ultralytics reads it: a `data.yaml` with `names` (a list
or `{index: name}`), `path` (relative to the YAML file; default its folder) and
per split an image folder, a list of folders or a `.txt` list of images, where
each image's labels are the `.txt` file at the same place under `labels/`
instead of `images/`. A label line is `class x_center y_center width height`
(detection) or `class x1 y1 x2 y2 ...` (segmentation, at least three points),
all coordinates normalised to [0, 1] of the EXIF-upright image.

What is written, into a new folder (whole or not at all; the source is only read):

    <out>/annotations/<split>.json   COCO, category ids = the YOLO class indices
    <out>/data.yaml                  a cardd dataset description (`cardd.data.spec`)
                                     pointing at the source's image folders

Polygons become COCO polygons; boxes become boxes and, since cardd's models
also learn masks, a rectangle polygon each (said in the summary). Every bad
line is reported with its file and line number; the conversion stops unless
`skip_bad` drops them (an image without a label file is a photo without damage).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.data.layout import staged_folder
from cardd.data.spec import SPLIT_NAMES
from cardd.structures.classes import ClassSet
from cardd.structures.images import is_image_name

#: Ultralytics' names for the validation split in data.yaml, besides `val`.
_SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}


@dataclass
class ConvertReport:
    """What a conversion found and wrote."""

    source: Path
    out: Path | None = None
    classes: ClassSet | None = None
    images: Counter = field(default_factory=Counter)  # split -> images
    instances: dict[str, Counter] = field(default_factory=dict)  # split -> name -> count
    polygons: int = 0
    boxes: int = 0
    clipped: int = 0  # polygons whose points overshot the image by <= MAX_OVERSHOOT_PX
    problems: list[str] = field(default_factory=list)  # "<file>:<line>: what"
    bad_lines: int = 0
    skipped: bool = False  # the problems were left out (`skip_bad`)

    def summary(self) -> str:
        kinds = []
        if self.polygons:
            clipped = f" ({self.clipped} clipped to the image)" if self.clipped else ""
            kinds.append(f"{self.polygons} polygons{clipped}")
        if self.boxes:
            kinds.append(f"{self.boxes} boxes (masks: their rectangles)")
        splits = ", ".join(f"{split} {n}" for split, n in self.images.items())
        skipped = (
            f"; left out {len(self.problems)} problems ({self.bad_lines} bad lines)"
            if self.skipped and self.problems
            else ""
        )
        return (
            f"{len(self.classes or ())} classes, images {splits}, "
            f"{' and '.join(kinds) or 'no objects'}{skipped} -> {self.out}"
        )


class ConversionFailed(CarddError):
    """Bad lines were found and not skipped; `report.problems` lists them."""

    def __init__(self, report: ConvertReport) -> None:
        super().__init__(
            f"{len(report.problems)} problems in {report.source}; nothing written "
            "(fix them, or pass --skip-bad to leave those lines out)"
        )
        self.report = report


def _names(data: dict, where: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        keys = list(names)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(
            keys
        ) != list(range(len(keys))):
            raise CarddError(f"{where}: `names` keys must be 0, 1, 2, ... (got {keys[:8]})")
        keys = sorted(keys)
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise CarddError(f"{where}: `names` must list the class names (a list or {{0: name}})")
    count = data.get("nc")
    if count is not None and count != len(names):
        raise CarddError(f"{where}: nc is {count}, but `names` has {len(names)}")
    return [str(n) for n in names]


def _resolve(base: Path, entry: str) -> Path:
    """A split entry as Ultralytics resolves it (Roboflow writes `../train/images`)."""
    path = (base / entry).resolve()
    if not path.exists() and entry.startswith("../"):
        path = (base / entry[3:]).resolve()
    return path


def _split_images(base: Path, entry: object, where: str) -> list[Path]:
    """Every image of a split entry: folders (searched recursively) or `.txt` lists."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        if not isinstance(item, str):
            raise CarddError(f"{where}: {item!r} is not a path")
        path = _resolve(base, item)
        if path.is_dir():
            images += sorted(
                p for p in path.rglob("*") if is_image_name(p) and p.is_file()
            )
        elif path.is_file() and path.suffix == ".txt":
            for line in path.read_text().splitlines():
                if line.strip():
                    images.append((path.parent / line.strip()).resolve())
        else:
            raise CarddError(f"{where}: {path} does not exist")
    return images


def label_file(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` of the path becomes `/labels/`, `.txt`."""
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker not in text:
        return image.with_suffix(".txt")  # labels beside the images
    head, tail = text.rsplit(marker, 1)
    return Path(f"{head}{os.sep}labels{os.sep}{tail}").with_suffix(".txt")


def _upright_size(path: Path) -> tuple[int, int]:
    """Width and height as the image shows (EXIF orientation applied), from its header."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _polygon_area(xs: list[float], ys: list[float]) -> float:
    return abs(
        sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
    ) / 2  # fmt: skip


def _parse_line(text: str, classes: int) -> tuple[int, list[float]] | str:
    """`(class, coordinates)`, or why the line is bad."""
    tokens = text.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return "not numbers"
    if not all(math.isfinite(v) for v in values):
        return "not finite numbers"
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < classes:
        return f"class {tokens[0]} is not among the {classes} names (0..{classes - 1})"
    coords = values[1:]
    if len(coords) != 4 and (len(coords) < 6 or len(coords) % 2):
        return f"{len(coords)} coordinates: a box has 4 (x y w h), a polygon an even number >= 6"
    if any(v < -OVERSHOOT or v > 1 + OVERSHOOT for v in coords):
        return "coordinates outside [0, 1] (YOLO labels are normalised)"
    if len(coords) == 4 and (coords[2] <= 0 or coords[3] <= 0):
        return "a box of zero width or height"
    return int(cls), coords


#: Hand-drawn polygons overshoot the image by a pixel or so (1.000977 on a 1024-px
#: photo): clipped and counted. Beyond this many pixels, a point is a bad label.
MAX_OVERSHOOT_PX = 2.0
#: The widest overshoot `_parse_line` lets through to be measured in pixels.
OVERSHOOT = 0.05


def _clip(coords: list[float], width: int, height: int) -> list[float] | str:
    """Normalised coordinates clipped into [0, 1] when they overshoot by at most
    `MAX_OVERSHOOT_PX` pixels, else why not."""
    clipped = []
    for i, v in enumerate(coords):
        size = width if i % 2 == 0 else height
        over = max(-v, v - 1) * size
        if over > MAX_OVERSHOOT_PX:
            return (f"coordinates outside [0, 1] by {over:.1f} px (YOLO labels are normalised; "
                    f"up to {MAX_OVERSHOOT_PX:g} px is clipped)")  # fmt: skip
        clipped.append(min(1.0, max(0.0, v)))
    return clipped


def _annotation(cls: int, coords: list[float], width: int, height: int) -> dict:
    if len(coords) == 4:
        xc, yc, w, h = coords
        x1, y1 = max(0.0, (xc - w / 2) * width), max(0.0, (yc - h / 2) * height)
        x2, y2 = min(float(width), (xc + w / 2) * width), min(float(height), (yc + h / 2) * height)
        polygon = [x1, y1, x2, y1, x2, y2, x1, y2]
    else:
        polygon = [v * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]
    xs, ys = polygon[0::2], polygon[1::2]
    x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    return {
        "category_id": cls,
        "segmentation": [[round(v, 2) for v in polygon]],
        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
        "area": round(_polygon_area(xs, ys), 2),
        "iscrowd": 0,
    }


def _convert_split(
    split: str, images: list[Path], folder: Path, names: list[str], report: ConvertReport
) -> dict:
    coco = {"images": [], "annotations": [], "categories": report.classes.categories()}
    counts: Counter = Counter()
    for image_id, image in enumerate(images, start=1):
        if not image.is_file():
            report.problems.append(f"{image}: listed image does not exist")
            continue
        try:
            width, height = _upright_size(image)
        except Exception as error:  # PIL raises many kinds for broken files
            report.problems.append(f"{image}: unreadable image ({error})")
            continue
        coco["images"].append(
            {
                "id": image_id,
                "file_name": image.relative_to(folder).as_posix(),
                "width": width,
                "height": height,
            }
        )
        labels = label_file(image)
        if not labels.is_file():
            continue  # a photo with nothing to find: Ultralytics' background image
        for number, text in enumerate(labels.read_text(errors="replace").splitlines(), start=1):
            if not text.strip():
                continue
            parsed = _parse_line(text, len(names))
            if isinstance(parsed, str):
                report.problems.append(f"{labels}:{number}: {parsed}")
                report.bad_lines += 1
                continue
            cls, coords = parsed
            inside = _clip(coords, width, height)
            if isinstance(inside, str):
                report.problems.append(f"{labels}:{number}: {inside}")
                report.bad_lines += 1
                continue
            report.clipped += inside != coords
            coords = inside
            annotation = _annotation(cls, coords, width, height)
            annotation.update(id=len(coco["annotations"]) + 1, image_id=image_id)
            coco["annotations"].append(annotation)
            counts[names[cls]] += 1
            if len(coords) == 4:
                report.boxes += 1
            else:
                report.polygons += 1
    report.images[split] = len(coco["images"])
    report.instances[split] = counts
    return coco


def _orphan_labels(images: list[Path], report: ConvertReport) -> None:
    """Label files in the split's label folders that no image has."""
    expected = {label_file(image) for image in images}
    folders = {label.parent for label in expected}
    for folder in sorted(folders):
        for label in sorted(folder.glob("*.txt")):
            if label not in expected:
                report.problems.append(f"{label}: a label file without its image")


def convert_yolo(source: Path, out: Path, skip_bad: bool = False, force: bool = False):
    """Convert the YOLO dataset that `source` (its data.yaml, or the folder holding one)
    describes into COCO files and a cardd description in `out`.

    Raises:
        ConversionFailed: bad lines or images, unless `skip_bad`.
        CarddError: no usable data.yaml, or `out` exists (without `force`).
    """
    import yaml

    from cardd.data.spec import read_yaml

    data_file = source / "data.yaml" if source.is_dir() else source
    if not data_file.is_file():
        raise CarddError(f"{data_file} does not exist: pass a YOLO dataset's data.yaml")
    data = read_yaml(data_file, "YOLO data file")
    if not isinstance(data, dict):
        raise CarddError(f"{data_file} is not a YOLO data.yaml (no keys)")
    names = _names(data, data_file)
    base = data_file.parent / str(data.get("path") or ".")
    report = ConvertReport(source=data_file, classes=ClassSet.from_categories(
        [{"id": i, "name": n} for i, n in enumerate(names)], str(data_file)))  # fmt: skip
    splits: dict[str, tuple[list[Path], Path]] = {}
    for split in SPLIT_NAMES:
        key = next((k for k in _SPLIT_KEYS[split] if data.get(k)), None)
        if key is None:
            continue
        images = _split_images(base, data[key], f"{data_file}: {key}")
        if not images:
            raise CarddError(f"{data_file}: the {key} split has no images")
        folder = Path(os.path.commonpath([p.parent for p in images]))
        splits[split] = (images, folder)
    if "train" not in splits:
        raise CarddError(f"{data_file}: no train split")
    cocos = {}
    for split, (images, folder) in splits.items():
        cocos[split] = _convert_split(split, images, folder, names, report)
        _orphan_labels(images, report)
    if report.problems and not skip_bad:
        raise ConversionFailed(report)
    report.skipped = skip_bad
    with staged_folder(out, force=force, source=data_file.parent) as staging:
        (staging / "annotations").mkdir()
        description = {}
        for split, coco in cocos.items():
            write_file(staging / "annotations" / f"{split}.json", json.dumps(coco))
            images_folder = splits[split][1]
            try:
                images_path = os.path.relpath(images_folder, out.resolve())
            except ValueError:  # another drive (Windows)
                images_path = str(images_folder)
            description[split] = {
                "annotations": f"annotations/{split}.json",
                "images": Path(images_path).as_posix(),
            }
        text = (
            f"# cardd dataset description, converted from {data_file.resolve()}\n"
            "# (cardd convert yolo); the classes are the annotation files' categories.\n"
            + yaml.safe_dump(description, sort_keys=False)
        )
        write_file(staging / "data.yaml", text)
    report.out = out
    return report
