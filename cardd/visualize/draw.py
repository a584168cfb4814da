"""Pictures of detections: masks, outlines, boxes and labels, drawn with OpenCV.

The one drawing routine of cardd (`cardd infer`'s vis/, `cardd serve`'s
/v1/annotate). mmdet's visualizer draws through matplotlib one polygon at a
time, which took three quarters of `cardd infer`'s time on CPU; here each mask
marks, inside its own box, the pixels where it is on top; the colours come from
one lookup, are blended with the photo once and copied where any mask is; each
mask is outlined from its own crop. The per-detection cost grows with the damaged
area, not with the photo's size.

Sizes scale with the photo (line width, font), so labels stay readable from
300 px thumbnails to 4000 px photos, and labels are placed greedily, best score
first, where they do not cover an earlier label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cardd.structures.classes import text_colour
from cardd.structures.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import numpy as np

    from cardd.structures.classes import ClassSet
    from cardd.structures.results import Detection

MASK_ALPHA = 0.45


def _bgr(classes: ClassSet, category_id: int) -> tuple[int, int, int]:
    r, g, b = classes.colour_of(category_id)
    return (b, g, r)


def _text_colour(classes: ClassSet, category_id: int) -> tuple[int, int, int]:
    """Black on light class colours (scratch's yellow), white on dark ones."""
    r, g, b = text_colour(classes.colour_of(category_id))
    return (b, g, r)


def _box(detection: Detection, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = detection.bbox_xyxy
    return (
        max(0, min(width - 1, int(x1))),
        max(0, min(height - 1, int(y1))),
        max(0, min(width, int(round(x2)) + 1)),
        max(0, min(height, int(round(y2)) + 1)),
    )


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _sizes(height: int, width: int) -> tuple[int, float, int]:
    """Line thickness, font scale and font thickness for a photo of this size."""
    longest = max(height, width)
    font_scale = max(0.4, longest / 1500)
    return max(1, round(longest / 600)), font_scale, max(1, round(font_scale * 1.6))


def label_layout(detections: Sequence[Detection], shape: tuple[int, int]) -> list[tuple]:
    """Where each label goes: `(detection, (x1, y1, x2, y2), (text, pad, baseline))`, best
    score first; a label is put above, inside or below its box, never over an earlier
    label, and left out when no such place is near its box."""
    import cv2

    height, width = shape
    thickness, font_scale, font_thickness = _sizes(height, width)
    placed: list[tuple] = []
    for d in sorted(detections, key=lambda d: -d.score):
        text = f"{d.label} {d.score:.2f}"
        (tw, th), baseline = cv2.getTextSize(
            text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thickness
        )
        pad = max(2, thickness * 2)
        w, h = tw + 2 * pad, th + baseline + 2 * pad
        x1, y1, x2, y2 = _box(d, width, height)
        left = min(x1, max(0, width - w))
        for top in [y1 - h, y1, y2, y2 - h] + [y1 + k * h for k in range(1, 6)]:
            top = max(0, min(height - h, top))
            rect = (left, top, left + w, top + h)
            if not any(_overlaps(rect, other[1]) for other in placed):
                placed.append((d, rect, (text, pad, baseline)))
                break
    return placed


def draw_detections(
    image_bgr: np.ndarray, detections: Sequence[Detection], classes: ClassSet
) -> np.ndarray:
    """A copy of `image_bgr` with every detection drawn in its class's colour (of
    `classes`, the model's) (the highest score is painted last, on top)."""
    import cv2
    import numpy as np

    height, width = image_bgr.shape[:2]
    out = image_bgr.copy()
    thickness, font_scale, font_thickness = _sizes(height, width)
    order = sorted(detections, key=lambda d: d.score)  # best on top

    # masks: which detection is on top at each pixel (later, better ones over earlier),
    # its colour from a lookup table, one blend, copied where any mask is
    with_masks = [d for d in order if d.mask is not None]
    if with_masks:
        on_top = np.zeros((height, width), dtype=np.uint8 if len(with_masks) < 256 else np.uint16)
        colours = np.zeros((len(with_masks) + 1, 3), dtype=np.uint8)
        for number, d in enumerate(with_masks, start=1):
            x1, y1, x2, y2 = _box(d, width, height)
            np.copyto(on_top[y1:y2, x1:x2], number, where=d.mask[y1:y2, x1:x2])
            colours[number] = _bgr(classes, d.category_id)
        if on_top.dtype == np.uint8:  # OpenCV's lookup, one channel at a time: 6x numpy's
            table = np.zeros((256, 3), dtype=np.uint8)
            table[: len(colours)] = colours
            layer = cv2.merge(
                [cv2.LUT(on_top, np.ascontiguousarray(table[:, c])) for c in range(3)]
            )
        else:
            layer = colours[on_top]
        blended = cv2.addWeighted(layer, MASK_ALPHA, out, 1 - MASK_ALPHA, 0)
        cv2.copyTo(blended, (on_top > 0).view(np.uint8), out)  # 13x numpy's masked copy
        for d in with_masks:
            x1, y1, x2, y2 = _box(d, width, height)
            crop = np.ascontiguousarray(d.mask[y1:y2, x1:x2].view(np.uint8))
            contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(
                out, contours, -1, _bgr(classes, d.category_id), thickness, offset=(x1, y1)
            )

    # boxes
    for d in order:
        x1, y1, x2, y2 = _box(d, width, height)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), _bgr(classes, d.category_id), thickness)

    # labels: best first, each where it covers no earlier label
    for d, spot, (text, pad, baseline) in label_layout(detections, (height, width)):
        cv2.rectangle(
            out, spot[:2], (spot[2] - 1, spot[3] - 1), _bgr(classes, d.category_id), cv2.FILLED
        )
        cv2.putText(
            out,
            text,
            (spot[0] + pad, spot[3] - pad - baseline),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            _text_colour(classes, d.category_id),
            font_thickness,
            cv2.LINE_AA,
        )
    return out


def thumbnail(image_bgr: np.ndarray, longest: int = 320) -> np.ndarray:
    """A copy no longer than `longest` pixels on its longer side (area-averaged)."""
    import cv2

    height, width = image_bgr.shape[:2]
    factor = longest / max(height, width)
    if factor >= 1:
        return image_bgr.copy()
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)


def encode_image(image_bgr: np.ndarray, suffix: str = ".jpg", quality: int = 90) -> bytes:
    """A BGR array as the bytes of an image file of type `suffix` (JPEG quality 90)."""
    import cv2

    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        suffix = ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, image_bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {suffix} image")
    return encoded.tobytes()


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """A BGR array as JPEG bytes."""
    return encode_image(image_bgr, ".jpg", quality)
