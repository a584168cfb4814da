"""Datasets that are not CarDD, built from the synthetic one for the tests: other
classes (any count, ids from 0 or with gaps, another order), no test split, and
the same data as a YOLO export (polygons or boxes, Ultralytics' or Roboflow's layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml


def categories(names: list[str], ids: list[int] | None = None) -> list[dict]:
    ids = ids if ids is not None else list(range(1, len(names) + 1))
    return [
        {"id": i, "name": n, "supercategory": "damage"} for i, n in zip(ids, names, strict=True)
    ]


def relabel(
    src_root: Path, dest: Path, cats: list[dict], splits=("train", "val"), copy_images=False
) -> Path:
    """The synthetic CarDD data with other categories (object k gets category
    k mod len(cats)), its splits' JSON in `dest/annotations/<split>.json`, images in
    `dest/images/<split>/` (copied) or left where they are; returns the description file."""
    dest.mkdir(parents=True)
    (dest / "annotations").mkdir()
    description = {}
    for split in splits:
        coco = json.loads((src_root / f"annotations/instances_{split}2017.json").read_text())
        coco["categories"] = cats
        for k, annotation in enumerate(coco["annotations"]):
            annotation["category_id"] = cats[k % len(cats)]["id"]
        (dest / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        images = src_root / f"{split}2017"
        if copy_images:
            shutil.copytree(images, dest / "images" / split)
            images = Path("images") / split
        description[split] = {"annotations": f"annotations/{split}.json", "images": str(images)}
    data = dest / "data.yaml"
    data.write_text(yaml.safe_dump(description))
    return data


def to_yolo(src_root: Path, dest: Path, boxes: bool = False, roboflow: bool = False) -> Path:
    """The synthetic CarDD data as a YOLO export: Ultralytics' `images/<split>` +
    `labels/<split>` (or Roboflow's `<split>/images` + `<split>/labels`, `valid`,
    `../` paths), class = category id - 1; returns its data.yaml."""
    dest.mkdir(parents=True)
    entries = {}
    for split in ("train", "val", "test"):
        coco = json.loads((src_root / f"annotations/instances_{split}2017.json").read_text())
        name = "valid" if roboflow and split == "val" else split
        images = dest / name / "images" if roboflow else dest / "images" / name
        labels = dest / name / "labels" if roboflow else dest / "labels" / name
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        by_image = {}
        for annotation in coco["annotations"]:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
        for image in coco["images"]:
            shutil.copy(src_root / f"{split}2017" / image["file_name"], images / image["file_name"])
            w, h = image["width"], image["height"]
            lines = []
            for a in by_image.get(image["id"], []):
                cls = a["category_id"] - 1
                if boxes:
                    x, y, bw, bh = a["bbox"]
                    values = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
                else:
                    polygon = a["segmentation"][0]
                    values = [v / (w if i % 2 == 0 else h) for i, v in enumerate(polygon)]
                lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in values)]))
            (labels / f"{Path(image['file_name']).stem}.txt").write_text("\n".join(lines) + "\n")
        entries["val" if split == "val" else split] = (
            f"../{name}/images" if roboflow else f"images/{name}"
        )
    names = [c["name"] for c in coco["categories"]]
    data = {**entries, "nc": len(names), "names": names}
    if not roboflow:
        data = {"path": ".", **entries, "names": dict(enumerate(names))}
    path = dest / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
