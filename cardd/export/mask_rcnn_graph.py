"""The ONNX graph of a Mask R-CNN (DCN_plus and its kin).

MMDetection's two-stage test path, rewritten in plain tensor operations that trace
into standard ONNX (opset 19): backbone with deformable convolutions
(`DeformConv`), FPN, RPN head, per-level top-k, box decoding, NMS
(`NonMaxSuppression`), RoIAlign per FPN level (`RoiAlign`), box head, per-class
NMS, mask head. mmdet's own modules compute the layers (their weights, their
`forward`); what lies between them (`mmdet`'s Python loops, `nonzero` tricks and
numpy calls, which do not export) is written here step for step after
mmdet 3.3's `RPNHead`, `DeltaXYWHBBoxCoder`, `SingleRoIExtractor`, `BBoxHead`,
`multiclass_nms` and `FCNMaskHead`.

Its masks output is each detection's M x M probabilities inside its box (M = 28),
which the engine pastes into the photo as mmdet's `_do_paste_mask` does.
"""

from __future__ import annotations

import contextlib
import math

from cardd.core.errors import CarddError
from cardd.export.graph_ops import batched_nms, count_up, first, grid_points, sigmoid

#: How far onnxruntime's mask probabilities may be from PyTorch's on the check image.
CHECK_MASK = 0.05


def is_this(model) -> bool:
    """Whether `model` is a two-stage detector this module may be asked to export."""
    from mmdet.models.detectors import TwoStageDetector

    return isinstance(model, TwoStageDetector)


def final_test_cfg(model):
    """The test settings of the head that gives the final detections."""
    return model.test_cfg.rcnn


def mask_layout(model) -> dict:
    """The masks output: each box's M x M probabilities (`cardd.models.formats`)."""
    return {"layout": "box"}


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
                scores = sigmoid(cls[0].permute(1, 2, 0).reshape(-1))
                deltas = deltas[0].permute(1, 2, 0).reshape(-1, 4)
                anchors = self.anchors(cls, level)
                scores, order = scores.sort(descending=True)
                keep = first(scores, self.rpn_cfg.nms_pre)
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
            keep = batched_nms(boxes, scores, levels, self.rpn_cfg.nms.iou_threshold)
            keep = keep[first(keep, self.rpn_cfg.max_per_img)]
            return boxes[keep]

        def anchors(self, cls, level):
            """mmdet's `AnchorGenerator.single_level_grid_priors` for the map's size:
            every base anchor at every position, positions row by row."""
            shifts = grid_points(cls, self.strides[level]).repeat(1, 2).reshape(-1, 1, 4)
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
        def candidates(self, image, image_size, score_thr, every: bool = False) -> dict:
            """Every (proposal, class) box scored above `score_thr`, before the final NMS:
            boxes, scores, labels (and the features the masks need). There is no cut of
            the best few at this stage (the RPN's is before it): `every` changes nothing."""
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
            labels = (count_up(scores[0]).to(torch.int64)[None, :]
                      + torch.zeros_like(scores, dtype=torch.int64)).reshape(-1)
            scores = scores.reshape(-1)
            valid = scores > score_thr
            return {"boxes": boxes[valid], "scores": scores[valid], "labels": labels[valid],
                    "feats": feats}  # fmt: skip

        # --- the whole test path ----------------------------------------------
        def forward(self, image, image_size, score_thr, max_detections):
            roi_head = self.model.roi_head
            found = self.candidates(image, image_size, score_thr)
            boxes, scores, labels = found["boxes"], found["scores"], found["labels"]
            keep = batched_nms(boxes, scores, labels, self.rcnn_cfg.nms.iou_threshold)
            keep = keep[first(keep, max_detections)]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            # masks: the probability map of each box's own class
            mask_feats = self.roi_features(found["feats"], boxes, roi_head.mask_roi_extractor)
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


@contextlib.contextmanager
def tracing(model, opset: int):
    """While `model` is traced: its DCN layers as `torchvision.ops.deform_conv2d`,
    exported as the standard `DeformConv` of `opset`."""
    import torch

    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d",
                                           _deform_conv_symbolic, opset)
    with _deform_convs_as_torchvision(model):
        yield
