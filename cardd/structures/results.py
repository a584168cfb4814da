"""What a model found in one image, as data: `Detection`, its JSON and CSV forms, and
masks as COCO run-length encoding. `cardd.detector.results.ImageResult` gathers
one image's detections; every output (JSON, CSV, HTTP, HTML, claim) is made from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Detection:
    """One damaged region: what, how sure, where (original-image pixels)."""

    label: str
    category_id: int
    score: float
    bbox_xyxy: list[float]
    area: float  # mask pixels, or box area when the model predicts no mask
    area_fraction: float  # area / (width * height)
    mask: Any = field(default=None, repr=False)  # bool array (H, W) or None

    def to_dict(self, with_mask: bool = True) -> dict:
        """JSON-ready dict; the mask as COCO RLE (`{"size": [h, w], "counts": str}`)."""
        out = {
            "label": self.label,
            "category_id": self.category_id,
            "score": self.score,
            "bbox_xyxy": [round(v, 2) for v in self.bbox_xyxy],
            "area": round(self.area, 2),
            "area_fraction": round(self.area_fraction, 6),
        }
        if with_mask and self.mask is not None:
            out["mask"] = encode_mask(self.mask)
        return out


CSV_HEADER = (
    "image",
    "label",
    "category_id",
    "score",
    "x1",
    "y1",
    "x2",
    "y2",
    "area",
    "area_fraction",
)


def csv_rows(document: dict) -> list[list]:
    """The CSV rows of one image's JSON document (`ImageResult.to_dict`, or a preds/*.json
    read back): the same text either way, as the JSON keeps what the CSV shows."""
    return [
        [
            document["image"],
            d["label"],
            d["category_id"],
            d["score"],
            *(f"{v:.2f}" for v in d["bbox_xyxy"]),
            f"{d['area']:.2f}",
            f"{d['area_fraction']:.6f}",
        ]
        for d in document["detections"]
    ]


def encode_mask(mask) -> dict:
    """A boolean mask as COCO run-length encoding with a text `counts`.

    pycocotools encodes column by column and needs the whole image in column-major
    order: a transposed copy and a scan of every pixel, 4 ms per mask of a 3-megapixel
    photo, 0.4 s for the 100 masks DCN_plus may keep. A detection's mask fills a
    small part of the photo, so the runs are found in the smallest rectangle that
    holds it, placed in the image, and compressed by pycocotools (1 ms): the same
    bytes as `pycocotools.mask.encode` (tested)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    height, width = mask.shape
    counts = _run_lengths(np.asarray(mask, dtype=bool))
    rle = mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def _run_lengths(mask) -> list[int]:
    """COCO's uncompressed counts of a boolean mask: alternating runs of 0s and 1s in
    column-major order, starting with 0s (a count of 0 if the first pixel is set)."""
    import numpy as np

    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return [height * width]
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top : rows[-1] + 1, left : cols[-1] + 1]
    # each crop column between two 0s: +1 where a run of 1s starts, -1 after it ends
    padded = np.zeros((crop.shape[1], crop.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = crop.T
    steps = np.diff(padded, axis=1)
    start_col, start_row = np.nonzero(steps == 1)
    end_col, end_row = np.nonzero(steps == -1)  # row-major: pairs with the starts
    starts = (left + start_col).astype(np.int64) * height + top + start_row
    ends = (left + end_col).astype(np.int64) * height + top + end_row
    # a run reaching the bottom of the image continues at the top of the next column
    split = starts[1:] != ends[:-1]
    starts = np.concatenate([starts[:1], starts[1:][split]])
    ends = np.concatenate([ends[:-1][split], ends[-1:]])
    edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, height * width
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    counts = np.diff(edges)
    return (counts[:-1] if counts[-1] == 0 else counts).tolist()
