"""`cardd export --format onnx`: a Mask R-CNN (DCN_plus and its kin) as one ONNX graph.

The graph is MMDetection's test path, rewritten in plain tensor operations that
trace into standard ONNX (opset 19): backbone with deformable convolutions
(`DeformConv`), FPN, RPN head, per-level top-k, box decoding, NMS
(`NonMaxSuppression`), RoIAlign per FPN level (`RoiAlign`), box head, per-class
NMS, mask head. mmdet's own modules compute the layers (their weights, their
`forward`); what lies between them (`mmdet`'s Python loops, `nonzero` tricks and
numpy calls, which do not export) is written here step for step after
mmdet 3.3's `RPNHead`, `DeltaXYWHBBoxCoder`, `SingleRoIExtractor`, `BBoxHead`,
`multiclass_nms` and `FCNMaskHead`.

    inputs   image          float32 [1, 3, H, W]  resized, normalised, RGB, padded to /32
             image_size     float32 [2]           (height, width) before padding
             score_thr      float32 []            keep class scores above this
             max_detections int64   []            at most this many (<= the model's)
    outputs  boxes  float32 [N, 4]   x1 y1 x2 y2 in the resized image
             scores float32 [N]      best first
             labels int64   [N]
             masks  float32 [N, M, M]  mask probabilities in the box (M = 28)

What the graph leaves to its caller is plain numpy (`cardd.detector.onnx_backend`): the
resize and normalisation (their numbers are in the metadata), boxes back to the
photo's size, and pasting each mask into the photo. The metadata (key `cardd`,
JSON) also holds the classes, category ids, palette, versions and the source's
sha256. The exported file is checked before it is moved into place: onnxruntime
runs it on an image and must give PyTorch's detections.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError, CarddUsageError
from cardd.detector.onnx_backend import MIN_ONNXRUNTIME
from cardd.models.formats import ONNX_FORMAT, ONNX_INPUTS, ONNX_METADATA_KEY, ONNX_OUTPUTS

if TYPE_CHECKING:
    from cardd.export.common import ExportResult

#: ONNX opset: 19 is the first with `DeformConv` in the standard domain.
OPSET = 19


def _count_up(like):
    """0, 1, 2... as long as the first axis of `like` (float32): `arange` whose length
    stays a dimension of the graph rather than a number baked in at tracing."""
    import torch

    return torch.ones_like(like, dtype=torch.float32).cumsum(0) - 1


def _first(values, count):
    """A mask of the first `count` (a tensor or a number) of the 1-D `values`, traced so
    that fewer entries than `count` is fine."""
    import torch

    return torch.ones_like(values, dtype=torch.int64).cumsum(0) <= count


def _batched_nms(boxes, scores, groups, iou_threshold: float):
    """mmcv's `batched_nms` with its offset trick (every group shifted past the largest
    coordinate): indices kept, best score first."""
    import torch
    from torchvision.ops import nms

    largest = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    shifted = boxes + (groups.to(boxes.dtype) * (largest + 1))[:, None]
    return nms(shifted, scores, iou_threshold)


def _sigmoid(logits):
    """The logistic function as 1 / (1 + exp(-x)), not ONNX `Sigmoid`: onnxruntime's
    Sigmoid is accurate to 1e-7 absolute only, so the RPN's small objectness scores
    (5e-5 at a logit of -10) came out 0.2% off (at -18: 4x), enough to reorder the
    proposals at the top-k cut and change which reach the box head (found on the demo
    model). Exp keeps its relative precision: the ranking is PyTorch's."""
    import torch

    return 1 / (1 + torch.exp(-logits))


#: `DeltaXYWHBBoxCoder.decode`'s default, which mmdet's RPN and box heads keep.
WH_RATIO_CLIP = 16 / 1000


def _decode(priors, deltas, coder, image_size):
    """`delta2bbox` of mmdet's `DeltaXYWHBBoxCoder` (not its legacy form), clipped to
    `image_size` (height, width) as mmdet clips to the resized image."""
    import torch

    means = deltas.new_tensor(coder.means)
    stds = deltas.new_tensor(coder.stds)
    denorm = deltas * stds + means
    centres = (priors[:, :2] + priors[:, 2:]) * 0.5
    sizes = priors[:, 2:] - priors[:, :2]
    max_ratio = abs(math.log(WH_RATIO_CLIP))
    new_centres = centres + sizes * denorm[:, :2]
    new_sizes = sizes * denorm[:, 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    boxes = torch.cat([new_centres - new_sizes * 0.5, new_centres + new_sizes * 0.5], dim=1)
    if coder.clip_border:
        limit = torch.stack([image_size[1], image_size[0]]).repeat(2)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
    return boxes


def build_graph(model):
    """The traced module of `model` (mmdet's layers, the steps between them rewritten);
    a function so that the torch import stays inside."""
    import torch
    from torchvision.ops import roi_align

    class Graph(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model
            rpn = model.rpn_head
            self.strides = [int(s[0]) for s in rpn.prior_generator.strides]
            for level, anchors in enumerate(rpn.prior_generator.base_anchors):
                self.register_buffer(f"base_anchors_{level}", anchors.clone().float())
            self.rpn_cfg = model.test_cfg.rpn
            self.rcnn_cfg = model.test_cfg.rcnn

        # --- RPN: proposals --------------------------------------------------
        def proposals(self, feats, image_size):
            rpn = self.model.rpn_head
            cls_scores, box_deltas = rpn(feats)
            all_boxes, all_scores, all_levels = [], [], []
            for level, (cls, deltas) in enumerate(zip(cls_scores, box_deltas, strict=True)):
                scores = _sigmoid(cls[0].permute(1, 2, 0).reshape(-1))
                deltas = deltas[0].permute(1, 2, 0).reshape(-1, 4)
                anchors = self.anchors(cls, level)
                scores, order = scores.sort(descending=True)
                keep = _first(scores, self.rpn_cfg.nms_pre)
                order, scores = order[keep], scores[keep]
                all_boxes.append(_decode(anchors[order], deltas[order], rpn.bbox_coder,
                                         image_size))
                all_scores.append(scores)
                all_levels.append(torch.full_like(scores, level, dtype=torch.int64))
            boxes, scores = torch.cat(all_boxes), torch.cat(all_scores)
            levels = torch.cat(all_levels)
            min_size = self.rpn_cfg.get("min_bbox_size", -1)
            if min_size >= 0:
                sizes = boxes[:, 2:] - boxes[:, :2]
                valid = (sizes[:, 0] > min_size) & (sizes[:, 1] > min_size)
                boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
            keep = _batched_nms(boxes, scores, levels, self.rpn_cfg.nms.iou_threshold)
            keep = keep[_first(keep, self.rpn_cfg.max_per_img)]
            return boxes[keep]

        def anchors(self, cls, level):
            """mmdet's `AnchorGenerator.single_level_grid_priors` for the map's size:
            every base anchor at every position, positions row by row."""
            stride = self.strides[level]
            ys = _count_up(cls[0, 0, :, 0]) * stride
            xs = _count_up(cls[0, 0, 0, :]) * stride
            grid_x = xs[None, :] + ys[:, None] * 0
            grid_y = ys[:, None] + xs[None, :] * 0
            shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
            return (shifts + getattr(self, f"base_anchors_{level}")[None]).reshape(-1, 4)

        # --- RoI features: each box from its FPN level -----------------------
        def roi_features(self, feats, boxes, extractor):
            widths_heights = boxes[:, 2:] - boxes[:, :2]
            scale = torch.sqrt(widths_heights[:, 0] * widths_heights[:, 1])
            levels = torch.floor(torch.log2(scale / extractor.finest_scale + 1e-6))
            levels = levels.clamp(min=0, max=len(extractor.featmap_strides) - 1)
            rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], 1)  # all of image 0
            parts, order = [], []
            for level, layer in enumerate(extractor.roi_layers):
                index = (levels == level).nonzero().reshape(-1)
                parts.append(roi_align(feats[level], rois[index], layer.output_size,
                                       layer.spatial_scale, layer.sampling_ratio,
                                       layer.aligned))
                order.append(index)
            return torch.cat(parts)[torch.cat(order).argsort()]

        # --- the whole test path ----------------------------------------------
        def forward(self, image, image_size, score_thr, max_detections):
            model = self.model
            roi_head = model.roi_head
            feats = model.extract_feat(image)
            proposals = self.proposals(feats, image_size)
            # boxes: softmax over classes + background, one box per class
            box_feats = self.roi_features(feats, proposals, roi_head.bbox_roi_extractor)
            cls_score, box_deltas = roi_head.bbox_head(box_feats)
            scores = cls_score.softmax(-1)[:, :-1]
            classes = scores.shape[1]
            boxes = _decode(proposals.repeat_interleave(classes, dim=0),
                            box_deltas.reshape(-1, 4), roi_head.bbox_head.bbox_coder,
                            image_size)
            labels = (_count_up(scores[0]).to(torch.int64)[None, :]
                      + torch.zeros_like(scores, dtype=torch.int64)).reshape(-1)
            scores = scores.reshape(-1)
            valid = scores > score_thr
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
            keep = _batched_nms(boxes, scores, labels, self.rcnn_cfg.nms.iou_threshold)
            keep = keep[_first(keep, max_detections)]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            # masks: the probability map of each box's own class
            mask_feats = self.roi_features(feats, boxes, roi_head.mask_roi_extractor)
            masks = roi_head.mask_head(mask_feats).sigmoid()
            size = masks.shape[-1]
            masks = masks.gather(1, labels.reshape(-1, 1, 1, 1).expand(-1, 1, size, size))
            return boxes, scores, labels, masks[:, 0]

    return Graph(model).eval()


def check_exportable(model) -> None:
    """Refuse, in one line, a model this exporter does not rewrite faithfully."""
    from mmdet.models.detectors import TwoStageDetector
    from mmdet.models.roi_heads import StandardRoIHead
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    name = type(model).__name__
    roi_head = getattr(model, "roi_head", None)
    problems = []
    if not isinstance(model, TwoStageDetector) or type(model.rpn_head).__name__ != "RPNHead":
        problems.append(f"{name} is not a two-stage detector with an RPNHead")
    elif not isinstance(roi_head, StandardRoIHead) or not roi_head.with_mask:
        problems.append("its RoI head is not a StandardRoIHead with a mask head")
    else:
        head = roi_head.bbox_head
        if not isinstance(head, BBoxHead) or head.custom_cls_channels or head.reg_class_agnostic:
            problems.append("its box head is not a softmax, per-class BBoxHead")
        if not isinstance(roi_head.mask_head, FCNMaskHead) or roi_head.mask_head.class_agnostic:
            problems.append("its mask head is not a per-class FCNMaskHead")
        for extractor in (roi_head.bbox_roi_extractor, roi_head.mask_roi_extractor):
            layer = extractor.roi_layers[0]
            if (not isinstance(extractor, SingleRoIExtractor) or type(layer).__name__ != "RoIAlign"
                    or layer.pool_mode != "avg"):
                problems.append("its RoI extractors are not RoIAlign (average) per FPN level")
                break
        for coder in (model.rpn_head.bbox_coder, head.bbox_coder):
            if not isinstance(coder, DeltaXYWHBBoxCoder) or coder.add_ctr_clamp:
                problems.append("its box coders are not plain DeltaXYWHBBoxCoder")
                break
        for cfg in (model.test_cfg.rpn.nms, model.test_cfg.rcnn.nms):
            if cfg.get("type", "nms") != "nms" or cfg.get("class_agnostic", False):
                problems.append(f"its test-time NMS is {cfg.get('type')}, not per-class nms")
                break
    if problems:
        raise CarddError(f"cannot export {name} to ONNX: {problems[0]} (cardd exports Mask "
                         "R-CNN models such as DCN_plus)")


def preprocessing(cfg) -> dict:
    """The test pipeline and data preprocessor as plain numbers for the ONNX engine.

    Raises:
        CarddError: a pipeline step that the engine does not reproduce.
    """
    from mmdet.utils import get_test_pipeline_cfg

    resize = None
    for step in get_test_pipeline_cfg(cfg):
        kind = str(step["type"]).split(".")[-1]
        if kind == "Resize":
            if not step.get("keep_ratio", False) or step.get("backend", "cv2") != "cv2":
                raise CarddError("cannot export to ONNX: the test Resize must keep the ratio "
                                 "and use OpenCV (mmdet's default)")
            if step.get("interpolation", "bilinear") != "bilinear":
                raise CarddError("cannot export to ONNX: the test Resize must be bilinear")
            resize = [int(v) for v in step["scale"]]
        elif kind not in ("LoadImageFromFile", "LoadImageFromNDArray", "LoadAnnotations",
                          "PackDetInputs"):
            raise CarddError(f"cannot export to ONNX: test pipeline step {kind} is not "
                             "reproduced by the ONNX engine")
    if resize is None:
        raise CarddError("cannot export to ONNX: the test pipeline has no Resize")
    pre = cfg.model.data_preprocessor
    return {
        "resize_scale": resize,  # mmcv.imrescale: long side <= max, short side <= min
        "interpolation": "bilinear",
        "mean": [float(v) for v in pre.get("mean", [0, 0, 0])],
        "std": [float(v) for v in pre.get("std", [1, 1, 1])],
        "bgr_to_rgb": bool(pre.get("bgr_to_rgb", False)),
        "pad_size_divisor": int(pre.get("pad_size_divisor", 1)),
        "pad_value": float(pre.get("pad_value", 0)),
    }


@contextlib.contextmanager
def _deform_convs_as_torchvision(model):
    """mmcv's DCN layers call mmcv's own autograd function, which exports as a custom
    op; for the export they call `torchvision.ops.deform_conv2d` (the same
    arithmetic, offsets in the same layout), exported as ONNX `DeformConv`."""
    import types

    from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack
    from torchvision.ops import deform_conv2d

    def deform(self, x):
        offset = self.conv_offset(x)
        return deform_conv2d(x, offset, self.weight, None, self.stride, self.padding,
                             self.dilation)

    def modulated(self, x):
        import torch

        out = self.conv_offset(x)
        first, second, mask = torch.chunk(out, 3, dim=1)
        offset = torch.cat((first, second), dim=1)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, mask=mask.sigmoid())

    patched = []
    for module in model.modules():
        if isinstance(module, ModulatedDeformConv2dPack):
            module.forward = types.MethodType(modulated, module)
        elif isinstance(module, DeformConv2dPack):
            module.forward = types.MethodType(deform, module)
        else:
            continue
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _deform_conv_symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h,
                          pad_w, dil_h, dil_w, n_weight_grps, n_offset_grps, use_mask):
    """`torchvision::deform_conv2d` -> ONNX `DeformConv` (opset 19)."""
    from torch.onnx import symbolic_helper as helper

    def number(value, name):
        return helper._get_const(value, "i", name)

    pad_h, pad_w = number(pad_h, "pad_h"), number(pad_w, "pad_w")
    inputs = [input, weight, offset, bias]
    if helper._get_const(use_mask, "b", "use_mask"):
        inputs.append(mask)
    return g.op(
        "DeformConv", *inputs,
        strides_i=[number(stride_h, "stride_h"), number(stride_w, "stride_w")],
        pads_i=[pad_h, pad_w, pad_h, pad_w],
        dilations_i=[number(dil_h, "dil_h"), number(dil_w, "dil_w")],
        group_i=number(n_weight_grps, "groups"),
        offset_group_i=number(n_offset_grps, "offset_groups"),
    )


def trace_to_onnx(model, path: Path, example_image, example_size, score_thr, max_detections):
    """Trace `model` (an mmdet Mask R-CNN in eval mode, on the CPU) into `path`."""
    import warnings

    import torch
    import torchvision.ops  # noqa: F401  (registers the nms and roi_align symbolics)

    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d",
                                           _deform_conv_symbolic, OPSET)
    graph = build_graph(model)
    with _deform_convs_as_torchvision(model), torch.inference_mode(False), \
            torch.no_grad(), warnings.catch_warnings():
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
    check_exportable(model)
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
        "max_per_img": int(model.test_cfg.rcnn.max_per_img),
        "test_score_thr": float(model.test_cfg.rcnn.score_thr),
        "mask_thr_binary": float(model.test_cfg.rcnn.mask_thr_binary),
        "opset": OPSET,
        "min_onnxruntime": MIN_ONNXRUNTIME,
    }
    model_file.release()

    example, size = _example_input(pre)
    limit = torch.tensor(int(model.test_cfg.rcnn.max_per_img))

    def write(partial: Path) -> dict:
        trace_to_onnx(model, partial, example, size, torch.tensor(0.05), limit)
        add_metadata(partial, metadata)
        return check_against_torch(model, partial, example, size)

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
    """A tensor of the resized size of a CarDD-sized photo (1024x768), to trace with."""
    import torch

    from cardd.detector.onnx_backend import resized_size

    height, width = resized_size(768, 1024, pre["resize_scale"])
    divisor = max(pre["pad_size_divisor"], 1)
    padded = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((1, 3, *padded), generator=generator)
    return image, torch.tensor([height, width], dtype=torch.float32)


#: How far onnxruntime may be from PyTorch on the export's check image.
CHECK_BOX_PX = 0.5
CHECK_SCORE = 1e-3


def check_against_torch(model, path: Path, image, image_size) -> dict:
    """Run the exported file with onnxruntime and the same graph with PyTorch (mmcv's
    own DCN kernels) on the trace's image, every detection kept (score > 0): the same
    labels, boxes within `CHECK_BOX_PX`, scores within `CHECK_SCORE`.

    Raises:
        CarddError: they differ more (the file is not written).
    """
    import numpy as np
    import onnxruntime
    import torch

    limit = int(model.test_cfg.rcnn.max_per_img)
    graph = build_graph(model)
    inputs = (image, image_size, torch.tensor(0.0), torch.tensor(limit))
    with torch.no_grad():
        expected = [t.numpy() for t in graph(*inputs)]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(ONNX_INPUTS, inputs, strict=True)}
    got = session.run(None, feeds)
    if len(got[0]) != len(expected[0]) or not np.array_equal(got[2], expected[2]):
        raise CarddError(
            f"the ONNX graph does not reproduce PyTorch: {len(got[0])} detections with labels "
            f"{got[2][:10].tolist()}... against {len(expected[0])} ({expected[2][:10].tolist()}...)"
        )
    box = float(np.abs(got[0] - expected[0]).max(initial=0.0))
    score = float(np.abs(got[1] - expected[1]).max(initial=0.0))
    mask = float(np.abs(got[3] - expected[3]).max(initial=0.0))
    if box > CHECK_BOX_PX or score > CHECK_SCORE:
        raise CarddError(f"the ONNX graph does not reproduce PyTorch: boxes up to {box:.3g} px "
                         f"and scores up to {score:.3g} apart")
    return {"detections": len(got[0]), "max_box_px": box, "max_score": score, "max_mask": mask}
