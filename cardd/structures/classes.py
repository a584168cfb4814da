"""What a model predicts: class names, their dataset category ids and their colours.

A `ClassSet` belongs to a dataset and to the model trained on it, never to the
code: it is read from a COCO file's `categories` (in the file's order, which is
the order MMDetection numbers its labels in) or from a model file's
`dataset_meta`, and every output (JSON, CSV, HTTP, pictures, reports) takes
names, ids and colours from the model's set.

`CARDD` is the CarDD release's set. Its one source is `metainfo` in
`configs/_base_/classes.py`, which every CarDD config inherits (mmengine configs
cannot import project modules); this module reads it with `ast.literal_eval`,
without importing mmengine.
"""

from __future__ import annotations

import ast
import colorsys
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from cardd.core.errors import CarddError
from cardd.core.resources import config_dir

RGB = tuple[int, int, int]

#: The colours every dataset's palette starts with, in this order: Sasha Trubetzkoy's
#: "20 simple, distinct colours", CarDD's six first, without grey and beige (invisible on
#: the silver and white cars of claim photos). More classes get `_farthest_colours`.
DISTINCT_COLOURS: tuple[RGB, ...] = (
    (230, 25, 75), (255, 225, 25), (0, 130, 200), (60, 180, 75), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128),
)  # fmt: skip


def _lab(rgb: RGB) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour: distances there follow what eyes see."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) ** 0.5


def _farthest_colours(chosen: list[RGB], count: int) -> list[RGB]:
    """`count` more colours, each the saturated candidate farthest (in L*a*b*) from all
    chosen so far: deterministic, and as distinct as the remaining room allows."""
    candidates = [
        tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h / 36, s, v))
        for h in range(36)
        for s in (0.55, 1.0)
        for v in (0.55, 0.8, 1.0)
    ]
    labs = {c: _lab(c) for c in candidates}
    taken = [_lab(c) for c in chosen]
    added: list[RGB] = []
    for _ in range(count):
        best = max(
            (c for c in candidates if c not in added and c not in chosen),
            key=lambda c: min((_distance(labs[c], t) for t in taken), default=0.0),
        )
        added.append(best)
        taken.append(labs[best])
    return added


@functools.cache
def default_palette(count: int) -> tuple[RGB, ...]:
    """One distinct colour per class, the same for the same number of classes."""
    base = list(DISTINCT_COLOURS[:count])
    return tuple(base + _farthest_colours(base, count - len(base)))


def _relative_luminance(rgb: Sequence[int]) -> float:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(rgb: Sequence[int]) -> RGB:
    """Black or white text, whichever contrasts more with `rgb` (WCAG's contrast ratio:
    black wins above a relative luminance of 0.179; a luma cut-off put white on green)."""
    return (0, 0, 0) if _relative_luminance(rgb) > 0.179 else (255, 255, 255)


@dataclass(frozen=True)
class ClassSet:
    """The classes of a dataset or model, in label order (label i is `names[i]`)."""

    names: tuple[str, ...]
    ids: tuple[int, ...]  # the dataset's category ids, any integers
    palette: tuple[RGB, ...]  # RGB, one per class

    def __post_init__(self) -> None:
        if not self.names:
            raise CarddError("no classes: a dataset needs at least one category")
        if not (len(self.names) == len(self.ids) == len(self.palette)):
            raise CarddError(
                f"{len(self.names)} class names, {len(self.ids)} ids and "
                f"{len(self.palette)} colours: one of each per class"
            )
        if len(set(self.names)) < len(self.names):
            raise CarddError(f"class names repeat: {list(self.names)[:30]}")
        if len(set(self.ids)) < len(self.ids):
            raise CarddError(f"category ids repeat: {list(self.ids)[:30]}")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_categories(cls, categories: object, where: str = "categories") -> ClassSet:
        """A COCO file's `categories` list, in its order (mmdet's label order).

        Raises:
            CarddError: not a list of `{"id": int, "name": str}`, or ids or names repeat.
        """
        if not isinstance(categories, list) or not categories:
            raise CarddError(f"{where}: no `categories` list")
        names, ids = [], []
        for index, category in enumerate(categories):
            if not isinstance(category, dict):
                raise CarddError(f"{where}: category {index} is not an object")
            cid, name = category.get("id"), category.get("name")
            if not isinstance(cid, int) or isinstance(cid, bool):
                raise CarddError(f"{where}: category {index} has id {cid!r}, not an integer")
            if not isinstance(name, str) or not name.strip():
                raise CarddError(f"{where}: category {cid} has no name")
            names.append(name)
            ids.append(cid)
        try:
            return cls(tuple(names), tuple(ids), default_palette(len(names)))
        except CarddError as error:
            raise CarddError(f"{where}: {error}") from None

    @classmethod
    def from_meta(cls, meta: dict, where: str = "dataset_meta") -> ClassSet:
        """A model's or config's `{"classes", "palette", "category_ids"}` (mmdet's
        `dataset_meta` plus cardd's ids). Without ids: CarDD's for CarDD's names, else
        1..N, COCO's convention; without a usable palette: `default_palette`."""
        names = meta.get("classes")
        if not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
            raise CarddError(f"{where}: class names are a {type(names).__name__}, not names")
        names = tuple(names)
        ids = meta.get("category_ids")
        if ids is None:
            ids = CARDD.ids if names == CARDD.names else tuple(range(1, len(names) + 1))
        if not (
            isinstance(ids, (list, tuple))
            and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise CarddError(f"{where}: category ids are not a list of integers")
        palette = meta.get("palette")
        if not _is_palette(palette, len(names)):
            palette = default_palette(len(names))
        try:
            return cls(names, tuple(ids), tuple(tuple(int(v) for v in c) for c in palette))
        except CarddError as error:
            raise CarddError(f"{where}: {error}") from None

    def meta(self) -> dict:
        """`dataset_meta`/`metainfo` as mmdet takes it, with the ids (plain lists: JSON)."""
        return {
            "classes": list(self.names),
            "palette": [list(c) for c in self.palette],
            "category_ids": list(self.ids),
        }

    def categories(self) -> list[dict]:
        """The `categories` list of a COCO file."""
        return [{"id": i, "name": n} for i, n in zip(self.ids, self.names, strict=True)]

    def category_id(self, label: int) -> int:
        """A model's 0-based label -> the dataset's category id."""
        return self.ids[label]

    def name_of(self, category_id: int) -> str:
        return self.names[self.ids.index(category_id)]

    def colour_of(self, category_id: int) -> RGB:
        return self.palette[self.ids.index(category_id)]

    def same_classes(self, other: ClassSet) -> bool:
        """Same names with the same ids in the same order (colours may differ)."""
        return self.names == other.names and self.ids == other.ids

    def difference(self, other: ClassSet) -> str:
        """How `other` differs, in words, for error messages."""
        mine, theirs = (
            set(zip(self.ids, self.names, strict=True)),
            set(zip(other.ids, other.names, strict=True)),
        )
        if mine == theirs:
            return "the same classes in another order"
        if set(self.names) == set(other.names):
            return "the same class names with other ids or in another order"
        return "other classes"

    def describe(self, limit: int = 8) -> str:
        """`3 classes: 0 paint chip, 1 dent, 2 crack` (the first `limit`)."""
        pairs = [f"{i} {n}" for i, n in zip(self.ids, self.names, strict=True)]
        more = f", ... ({len(pairs) - limit} more)" if len(pairs) > limit else ""
        return f"{len(pairs)} classes: {', '.join(pairs[:limit])}{more}"


def _is_palette(palette: object, count: int) -> bool:
    return (
        isinstance(palette, (list, tuple))
        and len(palette) == count
        and all(
            isinstance(c, (list, tuple))
            and len(c) == 3
            and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette
        )
    )


def _read_metainfo() -> dict:
    path = config_dir() / "_base_" / "classes.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "metainfo" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} defines no literal `metainfo`")


_METAINFO = _read_metainfo()

#: The CarDD release's six classes, ids 1..6, fixed colours.
CARDD = ClassSet(
    names=tuple(_METAINFO["classes"]),
    ids=tuple(_METAINFO["category_ids"]),
    palette=tuple(tuple(colour) for colour in _METAINFO["palette"]),
)

#: CarDD's class names exactly as in its JSON (with spaces), in category-id order.
CLASSES: tuple[str, ...] = CARDD.names

#: CarDD's category ids: 1..6 in the order of `CLASSES`.
CATEGORY_IDS: tuple[int, ...] = CARDD.ids

#: CarDD's fixed RGB colour per class.
PALETTE: tuple[RGB, ...] = CARDD.palette

#: CarDD's `metainfo` as MMDetection datasets and visualizers take it.
METAINFO: dict = {"classes": CLASSES, "palette": PALETTE}

#: The `categories` list of a CarDD COCO JSON.
CATEGORIES: list[dict] = CARDD.categories()

#: The three splits as they are named in the CarDD release.
SPLITS: tuple[str, ...] = ("train", "val", "test")


def label_to_category_id(label: int) -> int:
    """Map a CarDD model's 0-based label index to the CarDD category id."""
    return CATEGORY_IDS[label]


def annotation_file(split: str) -> str:
    """Relative path of a split's COCO JSON inside a `CarDD_COCO` folder."""
    return f"annotations/instances_{split}2017.json"


def image_folder(split: str) -> str:
    """Relative path of a split's image folder inside a `CarDD_COCO` folder."""
    return f"{split}2017"
