"""`cardd export --format onnx`: a model as one ONNX graph that onnxruntime runs alone.

Each architecture has its graph module: `mask_rcnn_graph` (DCN_plus and its kin:
deformable convolutions, RPN, RoIAlign, masks in their boxes) and
`rtmdet_ins_graph` (RTMDet-Ins: one stage, per-instance mask kernels, masks over
the image at stride 8). Both take and give the same tensors:

    inputs   image          float32 [1, 3, H, W]  resized, padded, normalised
             image_size     float32 [2]           mmdet's img_shape (height, width):
                                                  the resized image, or its fixed pad
             score_thr      float32 []            keep class scores above this
             max_detections int64   []            at most this many (<= the model's)
    outputs  boxes  float32 [N, 4]   x1 y1 x2 y2 in the resized image
             scores float32 [N]      best first
             labels int64   [N]
             masks  float32 [N, ...] as the metadata's `masks.layout` says:
                    "box":   [N, M, M] probabilities inside each box (M = 28)
                    "image": [N, H/s, W/s] logits over the input at `masks.stride`

What the graph leaves to its caller is plain numpy (`cardd.detector.onnx_backend`): the
resize, pad and normalisation (their numbers are in the metadata), boxes back to
the photo's size, and each mask into the photo. The metadata (key `cardd`, JSON)
also holds the classes, category ids, palette, versions and the source's sha256.
The exported file is checked before it is moved into place: onnxruntime runs it on
an image and must give PyTorch's detections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError, CarddUsageError
from cardd.detector.onnx_backend import MIN_ONNXRUNTIME
from cardd.models.formats import ONNX_FORMAT, ONNX_INPUTS, ONNX_METADATA_KEY, ONNX_OUTPUTS

if TYPE_CHECKING:
    from cardd.export.common import ExportResult

#: ONNX opset: 19 is the first with `DeformConv` in the standard domain.
OPSET = 19


def graph_module(model):
    """The graph module that exports `model`, after its checks.

    Raises:
        CarddError: an architecture no module exports, or one it would not rewrite
            faithfully (one line).
    """
    from cardd.export import mask_rcnn_graph, rtmdet_ins_graph

    for module in (mask_rcnn_graph, rtmdet_ins_graph):
        if module.is_this(model):
            module.check_exportable(model)
            return module
    raise CarddError(f"cannot export {type(model).__name__} to ONNX: cardd exports Mask "
                     "R-CNN (DCN_plus) and RTMDet-Ins models")


def preprocessing(cfg) -> dict:
    """The test pipeline and data preprocessor as plain numbers for the ONNX engine.

    Raises:
        CarddError: a pipeline step that the engine does not reproduce.
    """
    from mmdet.utils import get_test_pipeline_cfg

    resize, pad = None, None
    for step in get_test_pipeline_cfg(cfg):
        kind = str(step["type"]).split(".")[-1]
        if kind == "Resize" and resize is None and pad is None:
            if not step.get("keep_ratio", False) or step.get("backend", "cv2") != "cv2":
                raise CarddError("cannot export to ONNX: the test Resize must keep the ratio "
                                 "and use OpenCV (mmdet's default)")
            if step.get("interpolation", "bilinear") != "bilinear":
                raise CarddError("cannot export to ONNX: the test Resize must be bilinear")
            resize = [int(v) for v in step["scale"]]
        elif kind == "Pad" and resize is not None and pad is None:
            pad = _fixed_pad(step)
        elif kind not in ("LoadImageFromFile", "LoadImageFromNDArray", "LoadAnnotations",
                          "PackDetInputs"):
            raise CarddError(f"cannot export to ONNX: test pipeline step {kind} is not "
                             "reproduced by the ONNX engine")
    if resize is None:
        raise CarddError("cannot export to ONNX: the test pipeline has no Resize")
    pre = cfg.model.data_preprocessor
    numbers = {
        "resize_scale": resize,  # mmcv.imrescale: long side <= max, short side <= min
        "interpolation": "bilinear",
        "mean": [float(v) for v in pre.get("mean", [0, 0, 0])],
        "std": [float(v) for v in pre.get("std", [1, 1, 1])],
        "bgr_to_rgb": bool(pre.get("bgr_to_rgb", False)),
        "pad_size_divisor": int(pre.get("pad_size_divisor", 1)),
        "pad_value": float(pre.get("pad_value", 0)),
    }
    if pad is not None:
        numbers.update(pad)
    return numbers


def _fixed_pad(step) -> dict:
    """mmdet's test `Pad` to a fixed size (RTMDet's 640x640 of grey 114), as numbers:
    the padded size (width, height) and the pixel value, before normalisation."""
    value = step.get("pad_val", 0)
    value = value.get("img", 0) if isinstance(value, dict) else value
    value = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3
    constant = step.get("padding_mode", "constant") == "constant"
    if (step.get("size") is None or step.get("size_divisor") is not None
            or step.get("pad_to_square", False) or not constant or len(value) != 3):  # fmt: skip
        raise CarddError("cannot export to ONNX: the test Pad must pad to a fixed size with "
                         "a constant value")
    return {"pad_size": [int(v) for v in step["size"]], "pad_pixel": value}


def trace_to_onnx(graphs, model, path: Path, example_image, example_size, score_thr,
                  max_detections) -> None:  # fmt: skip
    """Trace `model` (an mmdet model in eval mode, on the CPU) through its graph module
    `graphs` into `path`."""
    import warnings

    import torch
    import torchvision.ops  # noqa: F401  (registers the nms and roi_align symbolics)

    graph = graphs.build_graph(model)
    with graphs.tracing(model, OPSET), torch.inference_mode(False), torch.no_grad(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on traced shapes and sizes
        torch.onnx.export(
            graph,
            (example_image, example_size, score_thr, max_detections),
            str(path),
            opset_version=OPSET,
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes={
                "image": {2: "height", 3: "width"},
                "boxes": {0: "detections"},
                "scores": {0: "detections"},
                "labels": {0: "detections"},
                "masks": {0: "detections"},
            },
            dynamo=False,
        )


def add_metadata(path: Path, metadata: dict) -> None:
    """Write `metadata` (JSON) into the model's `metadata_props` under `cardd`."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(metadata, sort_keys=True)
    proto.producer_name = "cardd"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export_onnx(opts) -> ExportResult:
    """Write the ONNX export of a checkpoint (`ExportOptions`, `out` ending in .onnx);
    the file appears whole, and only once onnxruntime reproduced PyTorch on it."""
    import torch

    from cardd.core.files import write_file
    from cardd.export.common import ExportResult, describe_export
    from cardd.models.model_file import build_model, open_model

    _require_onnx_tools()
    if opts.half:
        raise CarddUsageError("--half applies to .pth exports; an ONNX export is float32")
    model_file = open_model(opts.config, opts.checkpoint, opts.work_dir, opts.trust_checkpoint)
    model = build_model(model_file, "cpu")
    graphs = graph_module(model)
    final = graphs.final_test_cfg(model)
    pre = preprocessing(model_file.cfg)
    description = describe_export(model_file)
    description.pop("model")  # the graph and the numbers below are the whole model
    description.pop("config_file", None)
    metadata = {
        **description,
        "format": ONNX_FORMAT,
        "architecture": type(model).__name__,
        "dataset_meta": model_file.classes.meta(),
        "preprocessing": pre,
        "max_per_img": int(final.max_per_img),
        "test_score_thr": float(final.score_thr),
        "mask_thr_binary": float(final.mask_thr_binary),
        "masks": graphs.mask_layout(model),
        "opset": OPSET,
        "min_onnxruntime": MIN_ONNXRUNTIME,
    }
    model_file.release()

    example, size = _example_input(pre)
    limit = torch.tensor(int(final.max_per_img))

    def write(partial: Path) -> dict:
        trace_to_onnx(graphs, model, partial, example, size, torch.tensor(0.05), limit)
        add_metadata(partial, metadata)
        return check_against_torch(graphs, model, partial, example, size)

    check = write_file(opts.out, write)
    return ExportResult.of(opts.out, model_file.path, metadata["epoch"], metadata["metrics"], check)


def _require_onnx_tools() -> None:
    """onnx writes the graph and onnxruntime checks it: a one-line error without them."""
    from cardd.detector.onnx_backend import onnxruntime_module

    if _absent("onnx"):
        raise CarddError("exporting to ONNX needs onnx: pip install 'cardd[torch]'")
    onnxruntime_module()


def _absent(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _example_input(pre: dict):
    """A network input of a CarDD-sized photo (1024x768) and its image size, to trace
    with: noise, which every model finds many detections in at threshold 0."""
    import torch

    from cardd.detector.onnx_backend import input_geometry

    geometry = input_geometry(768, 1024, pre)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((1, 3, *geometry.padded), generator=generator)
    return image, torch.tensor(geometry.image_shape, dtype=torch.float32)


#: How far onnxruntime may be from PyTorch on the export's check image.
CHECK_BOX_PX = 0.5
CHECK_SCORE = 1e-3
#: Scores closer than this are a tie: the engines' sums differ in their last bits
#: (1e-8 here), so either may rank either first, and NMS then keeps either box.
CHECK_TIE = 1e-6


def check_against_torch(graphs, model, path: Path, image, image_size) -> dict:
    """Run the exported file with onnxruntime and the same graph with PyTorch (mmcv's
    own DCN kernels) on the trace's image, every detection kept (score > 0), and compare
    them (`compare_detections`).

    Raises:
        CarddError: they differ (the file is not written).
    """
    import onnxruntime
    import torch

    limit = int(graphs.final_test_cfg(model).max_per_img)
    graph = graphs.build_graph(model)
    inputs = (image, image_size, torch.tensor(0.0), torch.tensor(limit))
    with torch.no_grad():
        expected = [t.numpy() for t in graph(*inputs)]
        found = graph.candidates(*inputs[:3], every=True)
        candidates = [found[key].numpy() for key in ("boxes", "scores", "labels")]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(ONNX_INPUTS, inputs, strict=True)}
    return compare_detections(expected, session.run(None, feeds), graphs.CHECK_MASK, candidates)


def compare_detections(expected, got, mask_tolerance: float, candidates=None) -> dict:
    """PyTorch's detections (`expected`: boxes, scores, labels, masks) against
    onnxruntime's. Each detection of one engine must have its twin in the other (the
    same label, box within `CHECK_BOX_PX`, score within `CHECK_SCORE`, mask within
    `mask_tolerance`), except at or below a tie: two of PyTorch's `candidates` (boxes,
    scores, labels before the final NMS; else its detections) scored within `CHECK_TIE`,
    which either engine may rank first, so that NMS keeps another box there and, below
    it, suppresses others. Even there, what onnxruntime keeps must be one of PyTorch's
    candidates.

    Raises:
        CarddError: a detection above every tie without its twin, one that is nobody's
            candidate, or twins too far apart.
    """
    import numpy as np

    boxes, scores, labels, masks = expected
    their_boxes, their_scores, their_labels, their_masks = got
    all_boxes, all_scores, all_labels = candidates if candidates is not None else expected[:3]

    def twins(box, score, label, pool_boxes, pool_scores, pool_labels):
        return ((pool_labels == label) & (np.abs(pool_scores - score) <= CHECK_SCORE)
                & (np.abs(pool_boxes - box).max(axis=1, initial=0) <= CHECK_BOX_PX))

    taken = np.zeros(len(scores), dtype=bool)
    pairs, theirs_alone = [], []
    for index in range(len(their_scores)):
        near = ~taken & twins(their_boxes[index], their_scores[index], their_labels[index],
                              boxes, scores, labels)  # fmt: skip
        if near.any():
            twin = int(np.flatnonzero(near)[0])
            taken[twin] = True
            pairs.append((twin, index))
        elif not twins(their_boxes[index], their_scores[index], their_labels[index],
                       all_boxes, all_scores, all_labels).any():  # fmt: skip
            raise CarddError(
                "the ONNX graph does not reproduce PyTorch: onnxruntime found a detection "
                f"(score {their_scores[index]:.4g}, class {their_labels[index]}) that is "
                "none of PyTorch's candidates")
        else:
            theirs_alone.append(index)
    ordered = np.sort(all_scores)
    ties = ordered[1:][np.diff(ordered) < CHECK_TIE]
    tie = float(ties.max(initial=-1.0))
    alone = [float(scores[i]) for i in np.flatnonzero(~taken)]
    alone += [float(their_scores[j]) for j in theirs_alone]
    above = [s for s in alone if s > tie + CHECK_TIE]
    if above:
        raise CarddError(
            f"the ONNX graph does not reproduce PyTorch: {len(above)} detection(s) above every "
            f"tie have no twin in the other engine, the best at score {max(above):.4g} "
            f"({len(scores)} against {len(their_scores)} detections)"
        )
    mask = max((float(np.abs(masks[i] - their_masks[j]).max(initial=0.0)) for i, j in pairs),
               default=0.0)  # fmt: skip
    if mask > mask_tolerance:
        raise CarddError(f"the ONNX graph does not reproduce PyTorch: masks up to {mask:.3g} "
                         "apart")
    box = max((float(np.abs(boxes[i] - their_boxes[j]).max()) for i, j in pairs), default=0.0)
    score = max((float(abs(scores[i] - their_scores[j])) for i, j in pairs), default=0.0)
    return {"detections": len(their_scores), "tied": len(alone), "max_box_px": box,
            "max_score": score, "max_mask": mask}  # fmt: skip
