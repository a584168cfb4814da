"""`ImageResult`: what cardd says about one image, and the one thing every output is
made from: `cardd infer`'s JSON, CSV, pictures and index, `cardd serve`'s answers,
`cardd assess`'s claim. It can draw itself (`plot`), write the files `cardd infer`
writes for it (`save`, `files`) and say itself in a line (`summary`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cardd.structures.classes import ClassSet
from cardd.structures.images import is_image_name
from cardd.structures.results import Detection, csv_rows


@dataclass
class ImageResult:
    """One image's detections and where they came from.

    `DamageDetector(...)` and `DamageDetector.stream(...)` keep the decoded photo
    (`pixels`) so that `plot()` and `save()` can draw it; `detect()` on arrays does not
    (pass the array to them). `error` says why an input of `stream` gave no result
    (unreadable, refused name, the model failed): its detections are then empty.
    """

    image: str
    width: int
    height: int
    detections: list[Detection]
    config: str
    checkpoint: str
    score_thr: float
    classes: ClassSet = field(repr=False)  # the model's: names, ids and colours to draw with
    #: where the photo came from (a path or URL), and its name in an output folder
    path: Path | str | None = field(default=None, repr=False)
    name: PurePosixPath | None = field(default=None, repr=False)
    #: milliseconds per stage: decode, model (a batch's model time shared out)
    timing_ms: dict[str, float] = field(default_factory=dict, repr=False)
    pixels: Any = field(default=None, repr=False)  # the decoded BGR photo, when kept
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the model ran on this image (`error` is None)."""
        return self.error is None

    def to_dict(self, with_masks: bool = True) -> dict:
        """The JSON document of `cardd infer`'s preds/*.json and `POST /v1/detect`."""
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "config": self.config,
            "checkpoint": self.checkpoint,
            "score_thr": self.score_thr,
            "detections": [d.to_dict(with_mask=with_masks) for d in self.detections],
        }

    def csv_rows(self) -> list[list]:
        """One row per detection, in `CSV_HEADER`'s columns."""
        return csv_rows(self.to_dict(with_masks=False))

    def summary(self) -> str:
        """`1024x768 2 dent, 1 scratch` (what `cardd infer` prints per image)."""
        if self.error is not None:
            return f"failed: {self.error}"
        counts = Counter(d.label for d in self.detections)
        found = ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "no detections"
        return f"{self.width}x{self.height} {found}"

    def plot(self, image=None):
        """The photo with every detection drawn (masks, outlines, boxes, labels in the
        class colours), as a BGR array. `image`: the photo, where `pixels` is not kept."""
        from cardd.visualize.draw import draw_detections

        return draw_detections(self._photo(image), self.detections, self.classes)

    def files(self, picture: bool = True, image=None, document: dict | None = None
              ) -> dict[str, bytes]:  # fmt: skip
        """The files `cardd infer` writes for this image, by their path in its output
        folder (`output_names`): the picture and its thumbnail unless not `picture`,
        then the JSON (last: a JSON that is there means the image is done).
        `document`: the `to_dict()` already made, if any."""
        from cardd.visualize.draw import encode_image, thumbnail

        names = output_names(self.name or PurePosixPath(PurePosixPath(str(self.image)).name),
                             picture)  # fmt: skip
        out: dict[str, bytes] = {}
        if picture:
            drawn = self.plot(image)
            out[names["picture"]] = encode_image(drawn, PurePosixPath(names["picture"]).suffix)
            out[names["thumb"]] = encode_image(thumbnail(drawn), ".jpg", quality=80)
        document = self.to_dict() if document is None else document
        out[names["json"]] = json.dumps(document, indent=1).encode()
        return out

    def save(self, folder: str | Path, picture: bool = True, image=None) -> list[Path]:
        """Write `files()` into `folder` (made if needed) and return their paths. Each
        file is whole or absent, and stays inside `folder` whatever the image's name."""
        from cardd.core.files import write_file

        folder = Path(folder)
        written = []
        for relative, data in self.files(picture, image).items():
            target = folder / relative
            write_file(target, data, root=folder)
            written.append(target)
        return written

    def _photo(self, image):
        if image is not None:
            return image
        if self.pixels is None:
            raise ValueError(
                f"{self.image}: the photo was not kept with its result; pass it (image=...)"
            )
        return self.pixels


def output_names(name: PurePosixPath, picture: bool = True) -> dict[str, str | None]:
    """Where one image's files go in a `cardd infer` output folder (None where not
    written): `preds/<name>.json`, and with `picture` `vis/<name>` (named as its photo;
    one with no image suffix, an array's `image0`, is a PNG named so) and
    `thumbs/<name>.jpg`. The one place this layout is written."""
    shown = name if is_image_name(name) else name.with_name(f"{name.name}.png")
    return {
        "json": f"preds/{name}.json",
        "picture": f"vis/{shown}" if picture else None,
        "thumb": f"thumbs/{name}.jpg" if picture else None,
    }
