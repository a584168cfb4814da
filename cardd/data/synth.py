"""`cardd synth-data`: a tiny, deterministic dataset in exactly the CarDD layout.

It is what the demo, the tests and toy runs train on when the real dataset is
not there: real JPEG files, the three splits, all six categories in every split,
polygon masks and the release's JSON fields. The "damage" is drawn shapes on a
car-paint-like background, one kind of shape per class, so a model can learn
them quickly; it is a check of the pipeline, not a stand-in for real photos.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.data.layout import DATASET_DIR, staged_folder
from cardd.data.options import SYNTH_DEST, SYNTH_IMAGES, SYNTH_SEED
from cardd.structures.classes import CATEGORIES, annotation_file, image_folder

MIN_IMAGES = 6  # two per split, so each split holds all six classes
#: `--parts`: the car's side, seen as four parts (a parts model for `cardd assess`).
PART_CATEGORIES = [
    {"id": 1, "name": "fender"},
    {"id": 2, "name": "front door"},
    {"id": 3, "name": "rear door"},
    {"id": 4, "name": "wheel"},
]
SIZES = ((320, 240), (352, 256), (288, 288), (256, 320))  # (width, height)


def _split_sizes(total: int) -> dict[str, int]:
    held_out = max(2, round(total / 6))
    return {"train": total - 2 * held_out, "val": held_out, "test": held_out}


def _background(rng, width: int, height: int):
    import numpy as np

    base = rng.integers(60, 200, size=3)
    shade = np.linspace(1.15, 0.75, height)[:, None, None]
    image = np.clip(base[None, None, :] * shade + rng.normal(0, 4, (height, width, 3)), 0, 255)
    panel_y = int(rng.integers(height // 4, 3 * height // 4))
    image[panel_y : panel_y + 2] *= 0.6  # a panel gap
    return image.astype(np.uint8), base


def _car_parts(rng, width: int, height: int):
    """The side of a car as four part polygons (fender, front door, rear door, wheel) and
    their BGR colours: panels of one paint in slightly different tones, seams between."""
    import cv2
    import numpy as np

    top, bottom = height * rng.uniform(0.25, 0.35), height * rng.uniform(0.7, 0.8)
    left, right = width * rng.uniform(0.02, 0.08), width * rng.uniform(0.92, 0.98)
    cuts = rng.uniform(0.28, 0.38), rng.uniform(0.6, 0.7)
    xs = [left, left + (right - left) * cuts[0], left + (right - left) * cuts[1], right]
    paint = rng.integers(60, 200, size=3)
    polygons, colours = [], []
    for k in range(3):
        x1, x2 = xs[k] + (2 if k else 0), xs[k + 1] - (2 if k < 2 else 0)  # seams
        slant = height * 0.03 * (1 if k == 0 else 0)
        polygons.append(np.array([[x1 + slant, top], [x2, top], [x2, bottom], [x1, bottom]]))
        colours.append(tuple(int(c) for c in np.clip(paint * (1.0 + 0.08 * k), 0, 255)))
    wheel = cv2.ellipse2Poly(
        (int((xs[0] + xs[1]) / 2), int(bottom)), (int(height * 0.12), int(height * 0.12)), 0, 0,
        360, 15,
    )  # fmt: skip
    polygons.append(np.asarray(wheel, dtype=np.float64))
    colours.append((25, 25, 25))
    for poly in polygons:
        poly[:, 0] = poly[:, 0].clip(0, width - 1)
        poly[:, 1] = poly[:, 1].clip(0, height - 1)
    return polygons, colours


def _shape(rng, class_name: str, width: int, height: int):
    """A polygon (N x 2 float array) and a BGR colour for one damage of `class_name`."""
    import cv2
    import numpy as np

    scale = min(width, height)
    cx = float(rng.uniform(0.25, 0.75) * width)
    cy = float(rng.uniform(0.25, 0.75) * height)
    if class_name == "dent":
        axes = (int(scale * rng.uniform(0.10, 0.18)), int(scale * rng.uniform(0.06, 0.12)))
        angle = int(rng.integers(0, 180))
        poly = cv2.ellipse2Poly((int(cx), int(cy)), axes, angle, 0, 360, 15)
        colour = (40, 40, 40)
    elif class_name == "scratch":
        length, thickness = scale * rng.uniform(0.35, 0.6), scale * 0.025
        theta = rng.uniform(0, np.pi)
        d = np.array([np.cos(theta), np.sin(theta)])
        n = np.array([-d[1], d[0]])
        c = np.array([cx, cy])
        poly = np.array(
            [
                c - d * length / 2 - n * thickness,
                c + d * length / 2 - n * thickness,
                c + d * length / 2 + n * thickness,
                c - d * length / 2 + n * thickness,
            ]
        )
        colour = (235, 235, 235)
    elif class_name == "crack":
        xs = np.linspace(-0.25, 0.25, 7) * scale
        ys = rng.uniform(-0.06, 0.06, 7) * scale
        top = np.stack([cx + xs, cy + ys - 3], axis=1)
        bottom = np.stack([cx + xs[::-1], cy + ys[::-1] + 3], axis=1)
        poly = np.concatenate([top, bottom])
        colour = (20, 20, 20)
    elif class_name == "glass shatter":
        spikes = 9
        angles = np.linspace(0, 2 * np.pi, 2 * spikes, endpoint=False)
        radii = np.where(np.arange(2 * spikes) % 2 == 0, 0.2, 0.08) * scale
        poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        colour = (250, 230, 200)
    elif class_name == "lamp broken":
        angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        radii = scale * rng.uniform(0.09, 0.15, 14)
        poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        colour = (30, 160, 250)
    elif class_name == "tire flat":
        cy = height * 0.78
        poly = cv2.ellipse2Poly(
            (int(cx), int(cy)), (int(scale * 0.2), int(scale * 0.1)), 0, 0, 360, 15
        )
        colour = (15, 15, 15)
    else:  # pragma: no cover - CLASSES is closed
        raise ValueError(class_name)
    poly = np.asarray(poly, dtype=np.float64)
    poly[:, 0] = poly[:, 0].clip(0, width - 1)
    poly[:, 1] = poly[:, 1].clip(0, height - 1)
    return poly, colour


def _annotation(poly, ann_id: int, image_id: int, category_id: int) -> dict:
    import cv2
    import numpy as np

    x1, y1 = poly.min(axis=0)
    x2, y2 = poly.max(axis=0)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[round(float(v), 1) for v in poly.reshape(-1)]],
        "area": float(cv2.contourArea(poly.astype(np.float32))),
        "bbox": [
            round(float(x1), 1),
            round(float(y1), 1),
            round(float(x2 - x1), 1),
            round(float(y2 - y1), 1),
        ],
        "iscrowd": 0,
        "attributes": {"occluded": False},
    }


def synthesize(
    dest: Path = SYNTH_DEST.default,
    images: int = SYNTH_IMAGES.default,
    seed: int = SYNTH_SEED.default,
    force: bool = False,
    size: tuple[int, int] | None = None,
    parts: bool = False,
) -> dict[str, tuple[int, Counter]]:
    """Write `<dest>/CarDD_COCO` with `images` synthetic photos over the three splits.

    With `parts`, the annotations are a car's parts (`PART_CATEGORIES`: each photo the
    side of a car, its four parts as polygons) and the damage shapes are drawn on top
    unannotated: data for a parts model, photos for `cardd assess`.

    The same arguments always give byte-identical JSON and images. `size`
    (width, height) makes every image that size, e.g. CarDD's typical 1024x768
    for loading benchmarks; by default they are small (256-352 px) for CPU runs.

    Returns:
        Per split: (images, instances per class name).
    """
    import cv2
    import numpy as np
    from PIL import Image

    if images < MIN_IMAGES:
        raise CarddError(f"--images must be at least {MIN_IMAGES} (two per split), got {images}")
    rng = np.random.default_rng(seed)
    image_id = ann_id = 0
    summary: dict[str, tuple[int, Counter]] = {}
    with staged_folder(dest / DATASET_DIR, force=force) as staging:
        (staging / "annotations").mkdir()
        for split, count in _split_sizes(images).items():
            folder = staging / image_folder(split)
            folder.mkdir()
            coco = {
                "info": {"description": "cardd synthetic data (CarDD layout)", "seed": seed},
                "licenses": [],
                "images": [],
                "annotations": [],
                "categories": PART_CATEGORIES if parts else CATEGORIES,
            }
            class_cursor = 0
            for index in range(count):
                image_id += 1
                width, height = SIZES[int(rng.integers(len(SIZES)))]
                if size is not None:
                    width, height = size
                pixels, _ = _background(rng, width, height)
                if parts:
                    for category, poly, colour in zip(
                        PART_CATEGORIES, *_car_parts(rng, width, height), strict=True
                    ):
                        cv2.fillPoly(pixels, [poly.round().astype(np.int32)], colour)
                        ann_id += 1
                        coco["annotations"].append(
                            _annotation(poly, ann_id, image_id, category["id"])
                        )
                # The first two images of a split carry three damages each, so
                # together they hold all six classes.
                n_damages = 3 if index < 2 else int(rng.integers(1, 4))
                for _ in range(n_damages):
                    category = CATEGORIES[class_cursor % len(CATEGORIES)]
                    class_cursor += 1
                    poly, colour = _shape(rng, category["name"], width, height)
                    cv2.fillPoly(pixels, [poly.round().astype(np.int32)], colour[::-1])
                    if not parts:  # with parts, damage is only drawn
                        ann_id += 1
                        coco["annotations"].append(
                            _annotation(poly, ann_id, image_id, category["id"])
                        )
                file_name = f"{image_id:06d}.jpg"
                Image.fromarray(pixels).save(folder / file_name, quality=92)
                coco["images"].append(
                    {"id": image_id, "file_name": file_name, "height": height, "width": width}
                )
            write_file(staging / annotation_file(split), json.dumps(coco))
            names = {c["id"]: c["name"] for c in coco["categories"]}
            per_class = Counter(names[a["category_id"]] for a in coco["annotations"])
            summary[split] = (len(coco["images"]), per_class)
    return summary
