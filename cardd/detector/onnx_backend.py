"""The onnxruntime engine: a `cardd export --format onnx` model run without PyTorch.

This module imports onnxruntime, numpy and OpenCV only (never torch, mmcv, mmdet
or mmengine), so `cardd infer`, `cardd serve` and `DamageDetector` run an ONNX
model in an install without them (`make onnx-env`). The graph does the network
and its NMS (`cardd.export.onnx`); this module does what mmdet does around it,
step for step:

* resize as mmcv's `imrescale` (OpenCV bilinear, the size rounded as mmcv rounds
  it), pad to a fixed size with a grey where the pipeline does (RTMDet), normalise,
  BGR -> RGB, pad to a multiple of the divisor with zeros (Mask R-CNN: 32);
* boxes back to the photo's size (divided by the resize factors);
* masks into the photo, one detection at a time and only for those kept:
  a Mask R-CNN's 28x28 probabilities in each box pasted as mmdet's
  `_do_paste_mask` does on the CPU (bilinear `grid_sample`, `align_corners=False`,
  zeros outside; the rows and columns around the box only), then `>= 0.5`;
  an RTMDet-Ins's logits at stride 8 upsampled to the input and then to the photo
  as mmdet's `_bbox_mask_post_process` does (two bilinear `interpolate`s, as one
  separable linear map here), over the rows and columns where the instance can be
  above the threshold only, then `sigmoid > 0.5`.

An ONNX file is not a pickle: loading it runs no code of its author (an operator
onnxruntime does not know is refused). A graph may name external data files for its
weights; onnxruntime refuses any outside the model's folder (`../../etc/...`,
absolute paths; its check was merged in December 2025, before 1.25, the floor
here), which the tests check. It is opened from its
path rather than from bytes: 240 MB less memory for DCN_plus (measured).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cardd.core.errors import CarddError, CarddUsageError
from cardd.models.formats import (
    ONNX_FORMAT,
    ONNX_INPUTS,
    ONNX_MASK_LAYOUTS,
    ONNX_METADATA_KEY,
    ONNX_OUTPUTS,
    ONNX_READABLE_FORMATS,
)
from cardd.structures.classes import ClassSet

#: onnxruntime 1.25.0 is the first release that implements `DeformConv` (opset 19).
MIN_ONNXRUNTIME = "1.25.0"


def onnxruntime_module():
    """onnxruntime, or a one-line error saying how to get it."""
    try:
        import onnxruntime
    except ImportError:
        import sys

        where = ("; its releases for Python 3.10 stop at 1.23: use Python 3.11+"
                 if sys.version_info < (3, 11) else ": pip install cardd")  # fmt: skip
        raise CarddError(f".onnx models need onnxruntime {MIN_ONNXRUNTIME}+{where}") from None
    return onnxruntime


def resized_size(height: int, width: int, scale: list[int]) -> tuple[int, int]:
    """mmcv's `rescale_size` with `keep_ratio`: the largest size whose long side is at
    most max(scale) and short side at most min(scale), rounded as mmcv rounds it."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


@dataclass(frozen=True)
class InputGeometry:
    """Where a photo lands in the network's input: (height, width) of each stage."""

    resized: tuple[int, int]  # after the resize
    image_shape: tuple[int, int]  # mmdet's img_shape: the resized photo, or its fixed pad
    padded: tuple[int, int]  # the input tensor's, after padding to the divisor


def input_geometry(height: int, width: int, pre: dict) -> InputGeometry:
    """The sizes mmdet's test pipeline and `DetDataPreprocessor` give a photo."""
    resized = resized_size(height, width, pre["resize_scale"])
    shape = resized
    if pre.get("pad_size"):  # mmdet's Pad(size=(width, height)); never smaller
        shape = (max(int(pre["pad_size"][1]), resized[0]), max(int(pre["pad_size"][0]), resized[1]))
    divisor = max(int(pre["pad_size_divisor"]), 1)
    padded = (-(-shape[0] // divisor) * divisor, -(-shape[1] // divisor) * divisor)
    return InputGeometry(resized, shape, padded)


def preprocess(bgr, pre: dict):
    """A BGR uint8 photo -> (the network's input [1, 3, H, W] float32, mmdet's img_shape
    (height, width), (width factor, height factor)) as mmdet's test pipeline and
    `DetDataPreprocessor` make them."""
    import cv2
    import numpy as np

    height, width = bgr.shape[:2]
    geometry = input_geometry(height, width, pre)
    new_height, new_width = geometry.resized
    resized = cv2.resize(bgr, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    image = resized.astype(np.float32)
    if pre.get("pad_size"):  # the pipeline's Pad, before normalisation, in BGR order
        canvas = np.empty((*geometry.image_shape, 3), dtype=np.float32)
        canvas[:] = np.float32(pre["pad_pixel"])
        canvas[:new_height, :new_width] = image
        image = canvas
    if pre["bgr_to_rgb"]:
        image = image[:, :, ::-1]
    image = (image - np.float32(pre["mean"])) / np.float32(pre["std"])
    tensor = np.full((1, 3, *geometry.padded), pre["pad_value"], dtype=np.float32)
    shape_h, shape_w = geometry.image_shape
    tensor[0, :, :shape_h, :shape_w] = image.transpose(2, 0, 1)
    factors = (new_width / width, new_height / height)
    return tensor, geometry.image_shape, factors


def paste_mask(probabilities, box, height: int, width: int, threshold: float = 0.5):
    """One box's mask probabilities (M x M) -> a bool mask of the photo (height x width).

    mmdet's `_do_paste_mask` on the CPU: each pixel centre in the rows and columns
    from the box's floor - 1 to its ceil + 1 samples the M x M map bilinearly
    (`grid_sample`, `align_corners=False`, zero outside it); the sampling grid is a
    product of a row and a column coordinate, so it is two small matrix products
    here instead of a gather per pixel."""
    import numpy as np

    x0, y0, x1, y1 = (float(v) for v in box)
    left = max(int(np.floor(x0)) - 1, 0)
    top = max(int(np.floor(y0)) - 1, 0)
    right = min(int(np.ceil(x1)) + 1, width)
    bottom = min(int(np.ceil(y1)) + 1, height)
    mask = np.zeros((height, width), dtype=bool)
    if right <= left or bottom <= top:
        return mask
    size = probabilities.shape[0]
    rows = _sampling_weights(top, bottom, y0, y1, size)
    cols = _sampling_weights(left, right, x0, x1, size)
    pasted = rows @ probabilities.astype(np.float32) @ cols.T
    mask[top:bottom, left:right] = pasted >= threshold
    return mask


def _sampling_weights(start: int, stop: int, low: float, high: float, size: int):
    """Bilinear weights (pixels x size) of pixel centres start..stop-1 along one axis
    of a box from `low` to `high`, as `grid_sample` with `align_corners=False` and
    zero padding computes them (in float32, as mmdet does)."""
    import numpy as np

    centres = np.arange(start, stop, dtype=np.float32) + np.float32(0.5)
    span = np.float32(high) - np.float32(low)
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = (centres - np.float32(low)) / span * np.float32(2) - np.float32(1)
    grid[np.isinf(grid)] = 0  # a box of no width: mmdet sets the coordinate to 0
    position = ((grid + np.float32(1)) * np.float32(size) - np.float32(1)) / np.float32(2)
    below = np.floor(position)
    frac = (position - below).astype(np.float32)
    below = below.astype(np.int64)
    weights = np.zeros((len(centres), size), dtype=np.float32)
    index = np.arange(len(centres))
    for offset, weight in ((0, np.float32(1) - frac), (1, frac)):
        column = below + offset
        inside = (column >= 0) & (column < size) & np.isfinite(position)
        weights[index[inside], column[inside]] += weight[inside]
    return weights


def onnx_providers(device: str) -> list:
    """onnxruntime's execution providers for `--device`: `cpu`; `cuda`/`cuda:N` (the
    CUDA provider, TensorRT's first where it is installed); `auto` = CUDA when
    onnxruntime has it and sees a GPU, else CPU.

    Raises:
        CarddUsageError: not one of auto, cpu, cuda, cuda:N.
        CarddError: CUDA asked for and this onnxruntime has no CUDA provider.
    """
    onnxruntime = onnxruntime_module()
    if device != "auto" and device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise CarddUsageError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    available = onnxruntime.get_available_providers()
    if device == "cpu" or (device == "auto" and "CUDAExecutionProvider" not in available):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise CarddError(
            f"device {device}: this onnxruntime has no CUDA provider (it has "
            f"{', '.join(available)}); pip install onnxruntime-gpu"
        )
    options = {"device_id": int(device.split(":")[1]) if ":" in device else 0}
    gpu = [("CUDAExecutionProvider", options)]
    if "TensorrtExecutionProvider" in available:
        gpu.insert(0, ("TensorrtExecutionProvider", options))
    return [*gpu, "CPUExecutionProvider"]


def interpolation_taps(out_size: int, in_size: int, ratio: float):
    """PyTorch's bilinear `interpolate` (`align_corners=False`) along one axis: output i
    samples input (i + 0.5) * ratio - 0.5, clamped at 0, between its floor and the next
    index (the last index repeats at the edge). Returns (below, above, weight of above)."""
    import numpy as np

    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * np.float32(ratio)
    source = np.maximum(source - np.float32(0.5), np.float32(0))
    below = np.minimum(source.astype(np.int64), in_size - 1)
    above = np.minimum(below + 1, in_size - 1)
    upper = np.clip(source - below, 0, 1).astype(np.float32)
    return below, above, upper


def interpolation_weights(out_size: int, in_size: int, ratio: float):
    """`interpolation_taps` as a matrix (out_size x in_size)."""
    import numpy as np

    below, above, upper = interpolation_taps(out_size, in_size, ratio)
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, below), np.float32(1) - upper)
    np.add.at(weights, (rows, above), upper)
    return weights


class ImageMasks:
    """An RTMDet-Ins photo's mask logits (N x h x w at `stride` over the input) -> bool
    masks of the photo, as mmdet's `_bbox_mask_post_process` makes them: upsample by
    `stride` (bilinear), resize to the input's size in the photo's scale (mmdet's
    ceil(size / scale factor), rows by the width factor as mmdet writes it), crop to
    the photo, `sigmoid > threshold`.

    Both resizes are linear and separable, so each photo axis is one matrix (photo
    pixels x logit cells, computed once per photo); a mask is `rows @ logits @ cols.T`
    over the photo rows and columns whose weights reach a cell above the threshold
    (a bilinear mix of values at or below it stays at or below it), False elsewhere.
    """

    def __init__(self, logits, stride: int, factors: tuple[float, float], height: int,
                 width: int, threshold: float) -> None:  # fmt: skip
        import math

        self.logits = logits
        self.height, self.width, self.threshold = height, width, threshold
        self.stride = stride
        w_factor, h_factor = factors
        cells_h, cells_w = logits.shape[1:]
        # mmdet's sizes after its second resize: ceil(upsampled size / scale factor)
        self.out_h = math.ceil(cells_h * stride * (1 / w_factor))
        self.out_w = math.ceil(cells_w * stride * (1 / h_factor))
        # sigmoid(x) > threshold is x > logit(threshold): no exp over the photo's pixels
        self.logit_limit = (math.log(threshold / (1 - threshold)) if 0 < threshold < 1
                            else (-math.inf if threshold <= 0 else math.inf))  # fmt: skip

    @functools.cached_property
    def rows(self):
        return self._axis(self.height, self.out_h, self.logits.shape[1])

    @functools.cached_property
    def cols(self):
        return self._axis(self.width, self.out_w, self.logits.shape[2])

    def _axis(self, photo: int, out: int, cells: int):
        """(photo pixels x cells): the two resizes of one axis, cropped to the photo; made
        at the first mask, and in O(pixels x cells) (each output of the second resize
        mixes two rows of the first)."""
        import numpy as np

        up = cells * self.stride
        first = interpolation_weights(up, cells, 1 / self.stride)
        below, above, upper = interpolation_taps(out, up, up / out)
        kept = min(photo, out)  # a photo larger than mmdet's output: False beyond it
        weights = np.zeros((photo, cells), dtype=np.float32)
        weights[:kept] = ((np.float32(1) - upper[:kept, None]) * first[below[:kept]]
                          + upper[:kept, None] * first[above[:kept]])  # fmt: skip
        return weights

    def mask(self, index: int):
        import numpy as np

        logits = self.logits[index].astype(np.float32)
        mask = np.zeros((self.height, self.width), dtype=bool)
        candidates = logits > self.logit_limit
        if not candidates.any():
            return mask
        rows = np.flatnonzero((self.rows[:, candidates.any(1)] > 0).any(1))
        cols = np.flatnonzero((self.cols[:, candidates.any(0)] > 0).any(1))
        if not len(rows) or not len(cols):
            return mask
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        values = self.rows[top:bottom] @ logits @ self.cols[left:right].T
        mask[top:bottom, left:right] = values > self.logit_limit
        return mask


class BoxMasks:
    """A Mask R-CNN photo's M x M probabilities per box -> bool masks (`paste_mask`)."""

    def __init__(self, probabilities, boxes, height: int, width: int, threshold: float) -> None:
        self.probabilities, self.boxes = probabilities, boxes
        self.height, self.width, self.threshold = height, width, threshold

    def mask(self, index: int):
        return paste_mask(self.probabilities[index], self.boxes[index], self.height,
                          self.width, self.threshold)


@dataclass
class RawDetections:
    """One photo's detections as the graph gives them, boxes in the photo's pixels,
    best first; masks are made one at a time, for the detections kept."""

    boxes: object  # float32 (N, 4)
    scores: object  # float32 (N,)
    labels: object  # int64 (N,)
    masks: BoxMasks | ImageMasks
    height: int
    width: int

    def mask(self, index: int):
        return self.masks.mask(index)


class OnnxModel:
    """An ONNX export loaded into onnxruntime; `run` per photo.

    Raises:
        CarddError: not a readable ONNX model, or not a cardd export.
    """

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        from cardd.models.checkpoints import file_sha256

        onnxruntime = onnxruntime_module()

        self.path = Path(path)
        try:
            self.sha256 = file_sha256(self.path)
        except FileNotFoundError:
            raise CarddError(f"checkpoint {self.path} not found") from None
        except OSError as error:
            raise CarddError(f"cannot read {self.path}: {error.strerror or error}") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about the graph
        threads = threads if threads is not None else _thread_count()
        if threads:
            options.intra_op_num_threads = threads
        self.providers = onnx_providers(device)
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=self.providers
            )
        except Exception as error:  # onnxruntime raises its own types for bad files
            detail = " ".join(str(error).split())[:200]
            raise CarddError(f"{self.path} is not an ONNX model onnxruntime can run ({detail})"
                             ) from None
        on_gpu = self.session.get_providers()[0] != "CPUExecutionProvider"
        self.device = (device if device.startswith("cuda") else "cuda") if on_gpu else "cpu"
        # the arenas give a photo's activations back after each run (onnxruntime keeps
        # them otherwise): DCN_plus at rest 0.47 GB instead of 0.9, at the same speed
        arenas = "cpu:0" + (f";gpu:{self.providers[0][1]['device_id']}" if on_gpu else "")
        self._run_options = onnxruntime.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", arenas)
        self.metadata = self._metadata()
        self.classes = ClassSet.from_meta(self.metadata["dataset_meta"], str(self.path))
        self.max_per_img = int(self.metadata["max_per_img"])
        #: the score threshold of the model's test settings (mmdet's `rcnn.score_thr`):
        #: what `cardd eval` scores at, as mmdet's test loop does
        self.test_score_thr = float(self.metadata.get("test_score_thr", 0.05))
        self.config_source = f"{self.path} (embedded)"

    def release(self) -> None:
        """As `ModelFile.release`: nothing to drop (the file's bytes are not kept)."""

    def _metadata(self) -> dict:
        text = self.session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
        if text is None:
            raise CarddError(
                f"{self.path} is an ONNX model but not a cardd export (no '{ONNX_METADATA_KEY}' "
                "metadata): make one with cardd export --format onnx"
            )
        try:
            meta = json.loads(text)
        except ValueError:
            raise CarddError(f"{self.path}: its cardd metadata is not JSON") from None
        if not isinstance(meta, dict) or meta.get("format") not in ONNX_READABLE_FORMATS:
            raise CarddError(f"{self.path}: cardd ONNX format {meta.get('format')!r} is not "
                             f"{ONNX_FORMAT}; export it again with this cardd")
        meta.setdefault("masks", {"layout": "box"})  # format 1: Mask R-CNN only
        needed = ("dataset_meta", "preprocessing", "max_per_img", "mask_thr_binary")
        missing = [key for key in needed if key not in meta]
        if missing:
            raise CarddError(f"{self.path}: its cardd metadata lacks {', '.join(missing)}")
        names = [i.name for i in self.session.get_inputs()]
        if names != ["image", "image_size", "score_thr", "max_detections"]:
            raise CarddError(f"{self.path}: its inputs {names} are not a cardd export's")
        check_metadata(meta, str(self.path))
        return meta

    def run(self, bgr, score_thr: float, max_detections: int | None = None) -> RawDetections:
        """Detections of one BGR uint8 photo with scores above `score_thr`, at most
        `max_detections` (and the model's own limit)."""
        import numpy as np

        pre = self.metadata["preprocessing"]
        tensor, (height, width), (w_factor, h_factor) = preprocess(bgr, pre)
        limit = self.max_per_img
        if max_detections is not None:
            limit = min(limit, max_detections)
        feeds = dict(zip(ONNX_INPUTS, (
            tensor,
            np.array([height, width], dtype=np.float32),
            np.array(score_thr, dtype=np.float32),
            np.array(limit, dtype=np.int64),
        ), strict=True))  # fmt: skip
        boxes, scores, labels, masks = self.session.run(list(ONNX_OUTPUTS), feeds,
                                                        self._run_options)  # fmt: skip
        layout = self.metadata["masks"]
        check_outputs(boxes, scores, labels, masks, len(self.classes), limit, str(self.path),
                      layout, tensor.shape[2:])  # fmt: skip
        boxes = boxes / np.array([w_factor, h_factor, w_factor, h_factor], dtype=np.float32)
        boxes = boxes.astype(np.float32)
        photo_h, photo_w = int(bgr.shape[0]), int(bgr.shape[1])
        threshold = float(self.metadata["mask_thr_binary"])
        if layout["layout"] == "image":
            painter = ImageMasks(masks, int(layout["stride"]), (w_factor, h_factor), photo_h,
                                 photo_w, threshold)  # fmt: skip
        else:
            painter = BoxMasks(masks, boxes, photo_h, photo_w, threshold)
        return RawDetections(boxes=boxes, scores=scores, labels=labels, masks=painter,
                             height=photo_h, width=photo_w)  # fmt: skip


def _is_number(value, low: float, high: float, whole: bool = False) -> bool:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if whole and not isinstance(value, int):
        return False
    return math.isfinite(value) and low <= value <= high


def check_metadata(meta: dict, where: str) -> None:
    """Refuse metadata that is not what `cardd export` writes, before a photo is run:
    each number finite and in range, each list of its length (the engine allocates
    and divides by these).

    Raises:
        CarddError: one line naming the field.
    """
    pre = meta.get("preprocessing")
    checks = {
        "dataset_meta": isinstance(meta.get("dataset_meta"), dict),
        "preprocessing": isinstance(pre, dict),
        "max_per_img": _is_number(meta.get("max_per_img"), 1, 10_000, whole=True),
        "mask_thr_binary": _is_number(meta.get("mask_thr_binary"), 0, 1),
        "test_score_thr": _is_number(meta.get("test_score_thr", 0.05), 0, 1),
        "masks": _is_mask_layout(meta.get("masks", {"layout": "box"})),
    }
    if isinstance(pre, dict):
        scale, mean, std = pre.get("resize_scale"), pre.get("mean"), pre.get("std")
        checks.update({
            "preprocessing.resize_scale": isinstance(scale, list) and len(scale) == 2
            and all(_is_number(v, 32, 8192, whole=True) for v in scale),
            "preprocessing.mean": isinstance(mean, list) and len(mean) == 3
            and all(_is_number(v, -1e4, 1e4) for v in mean),
            "preprocessing.std": isinstance(std, list) and len(std) == 3
            and all(_is_number(v, 1e-6, 1e4) for v in std),
            "preprocessing.bgr_to_rgb": isinstance(pre.get("bgr_to_rgb"), bool),
            "preprocessing.pad_size_divisor": _is_number(pre.get("pad_size_divisor"), 1, 128,
                                                         whole=True),
            "preprocessing.pad_value": _is_number(pre.get("pad_value", 0), -1e4, 1e4),
            "preprocessing.pad_size": pre.get("pad_size") is None or (
                isinstance(pre["pad_size"], list) and len(pre["pad_size"]) == 2
                and all(_is_number(v, 32, 8192, whole=True) for v in pre["pad_size"])),
            "preprocessing.pad_pixel": pre.get("pad_size") is None or (
                isinstance(pre.get("pad_pixel"), list) and len(pre["pad_pixel"]) == 3
                and all(_is_number(v, 0, 255) for v in pre["pad_pixel"])),
        })  # fmt: skip
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        shown = meta.get(bad[0]) if "." not in bad[0] else pre.get(bad[0].split(".", 1)[1])
        raise CarddError(
            f"{where}: its cardd metadata's {bad[0]} is {str(shown)[:60]!r}, not what "
            "cardd export writes"
        )


def _is_mask_layout(layout) -> bool:
    if not isinstance(layout, dict) or layout.get("layout") not in ONNX_MASK_LAYOUTS:
        return False
    return layout["layout"] == "box" or _is_number(layout.get("stride"), 1, 64, whole=True)


def check_outputs(boxes, scores, labels, masks, classes: int, limit: int, where: str,
                  layout: dict | None = None, input_size: tuple = ()) -> None:  # fmt: skip
    """Refuse what a graph returned unless it is detections: one count N within the
    limit, boxes (N, 4), scores (N,) in [0, 1], labels (N,) naming a class, masks of the
    layout (box: (N, M, M); image: (N, H/s, W/s) of the input's H x W), every value
    finite.

    Raises:
        CarddError: one line saying which output is wrong.
    """
    import numpy as np

    count = len(scores) if getattr(scores, "ndim", 0) == 1 else -1
    problem = None
    if count < 0 or count > limit:
        problem = f"{count} scores for a limit of {limit}"
    elif boxes.shape != (count, 4) or labels.shape != (count,):
        problem = f"boxes {boxes.shape} and labels {labels.shape} for {count} scores"
    elif masks.ndim != 3 or masks.shape[0] != count or masks.shape[1:] != _mask_shape(
            masks, layout or {"layout": "box"}, input_size):
        problem = f"masks {masks.shape} for {count} detections"
    elif not (np.isfinite(boxes).all() and np.isfinite(scores).all() and np.isfinite(masks).all()):
        problem = "values that are not finite"
    elif count and not ((scores >= 0) & (scores <= 1)).all():
        problem = "scores outside 0..1"
    elif count and not (np.issubdtype(labels.dtype, np.integer)
                        and ((labels >= 0) & (labels < classes)).all()):  # fmt: skip
        problem = f"labels outside the {classes} classes"
    if problem:
        raise CarddError(f"{where}: the graph returned {problem}; not a cardd export's output")


def _mask_shape(masks, layout: dict, input_size: tuple) -> tuple:
    """The (rows, columns) each detection's mask must have in `layout`."""
    if layout["layout"] == "image":
        stride = int(layout["stride"])
        return tuple(-(-int(side) // stride) for side in input_size)
    return (masks.shape[1], masks.shape[1])


def _thread_count() -> int | None:
    """onnxruntime's intra-op threads: OMP_NUM_THREADS when set (as for PyTorch), else
    onnxruntime's default (one per physical core)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def check_options(config, half: bool) -> None:
    """Refuse the PyTorch-only settings for an ONNX model, in one line.

    Raises:
        CarddUsageError: a config (the file carries its settings) or --half.
    """
    if config is not None:
        raise CarddUsageError(
            f"--config {config}: an ONNX model carries its own settings; pass none"
        )
    if half:
        raise CarddUsageError("--half is for PyTorch models: an ONNX model runs as exported")


def is_onnx_model(checkpoint) -> bool:
    """Whether `--checkpoint` names an ONNX model (by its name: `.onnx`)."""
    return isinstance(checkpoint, (str, Path)) and str(checkpoint).lower().endswith(".onnx")


class OnnxBackend(OnnxModel):
    """The onnxruntime engine of `DamageDetector` for `.onnx` exports (no PyTorch)."""

    #: the same margin below the threshold as `TorchBackend.MARGIN` (mmdet's heads keep
    #: scores strictly above theirs; the graph does as they do)
    MARGIN = 1e-3

    def __init__(self, config, checkpoint, device: str = "auto", half: bool = False,
                 trust_checkpoint: bool = False, work_dir=None) -> None:  # fmt: skip
        check_options(config, half)
        super().__init__(Path(checkpoint), device)
        self.half = False
        self.model_file = self  # path, sha256, classes, as a `ModelFile` has them
        self.model = None

    def run_batch(self, arrays: list, score_thr: float, max_detections: int | None) -> list:
        """Raw detections of BGR arrays, one photo at a time (the graph takes one)."""
        return [self.run(array, score_thr - self.MARGIN, max_detections) for array in arrays]
