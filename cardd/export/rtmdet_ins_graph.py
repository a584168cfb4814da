"""The ONNX graph of an RTMDet-Ins model (RTMDet_ins_s, _m, tiny_RTMDet_ins).

MMDetection's one-stage test path, step for step after mmdet 3.3's
`RTMDetInsHead.predict_by_feat` (`_predict_by_feat_single`,
`_bbox_mask_post_process`, `_mask_predict_by_feat_single`): mmdet's own modules
compute the backbone, neck and head (their weights, their `forward`); between
them, in plain tensor operations that trace into standard ONNX (opset 19):

* per level, class scores (sigmoid) above the threshold, the best `nms_pre` of
  them (mmdet's `filter_scores_and_topk`), each with its point prior, box
  distances and mask kernel;
* boxes from the distances to the point (`DistancePointBBoxCoder`), clipped to
  the image shape, boxes of no width or height dropped, per-class NMS
  (`NonMaxSuppression`), the best `max_detections`;
* each kept instance's mask logits: its dynamic kernel (three 1x1 convolutions
  whose weights the head predicted) run over the prototype features and the
  coordinates relative to its point, written as batched matrix products (a
  grouped convolution with one group per instance would freeze the count).

Its masks output is those logits over the whole input at the prototypes' stride
(8): [N, H/8, W/8]. mmdet upsamples every instance to the padded input and then to
the photo; the engine does the same arithmetic only over the rows and columns
where an instance can be above the threshold (`cardd.detector.onnx_backend`).
"""

from __future__ import annotations

import contextlib

from cardd.core.errors import CarddError
from cardd.export.graph_ops import batched_nms, count_up, first, grid_points, sigmoid

#: How far onnxruntime's mask logits may be from PyTorch's on the check image.
CHECK_MASK = 0.05


def is_this(model) -> bool:
    """Whether `model` is a one-stage detector with an RTMDet-Ins head."""
    from mmdet.models.dense_heads import RTMDetInsHead

    return isinstance(getattr(model, "bbox_head", None), RTMDetInsHead)


def final_test_cfg(model):
    """The test settings of the head that gives the final detections."""
    return model.bbox_head.test_cfg


def mask_layout(model) -> dict:
    """The masks output: logits over the input at the prototypes' stride."""
    return {"layout": "image", "stride": int(model.bbox_head.prior_generator.strides[0][0])}


def check_exportable(model) -> None:
    """Refuse, in one line, an RTMDet-Ins variant this graph does not rewrite faithfully."""
    from mmdet.models.task_modules.coders import DistancePointBBoxCoder

    head = model.bbox_head
    cfg = head.test_cfg
    problems = []
    if not head.use_sigmoid_cls or head.with_objectness:
        problems.append("its classifier is not sigmoid scores without objectness")
    if not isinstance(head.bbox_coder, DistancePointBBoxCoder):
        problems.append("its box coder is not DistancePointBBoxCoder")
    if type(head.prior_generator).__name__ != "MlvlPointGenerator":
        problems.append("its priors are not points (MlvlPointGenerator)")
    if cfg.nms.get("type", "nms") != "nms" or cfg.nms.get("class_agnostic", False):
        problems.append(f"its test-time NMS is {cfg.nms.get('type')}, not per-class nms")
    if not cfg.get("nms_pre", 0) > 0:
        problems.append("its test settings keep no nms_pre candidates per level")
    if problems:
        raise CarddError(f"cannot export {type(model).__name__} to ONNX: {problems[0]}")


@contextlib.contextmanager
def tracing(model, opset: int):
    """Nothing to swap: every layer of RTMDet-Ins exports as it is."""
    yield


def build_graph(model):
    """The traced module of `model` (mmdet's layers, the steps between them rewritten);
    a function so that the torch import stays inside."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model
            head = model.bbox_head
            self.strides = [int(s[0]) for s in head.prior_generator.strides]
            self.offset = float(head.prior_generator.offset)
            self.cfg = head.test_cfg

        def points(self, feature_map, stride: int):
            """mmdet's `MlvlPointGenerator.single_level_grid_priors`: every position's
            (x, y) in the input, row by row."""
            return grid_points(feature_map, stride, self.offset)

        def candidates(self, image, image_size, score_thr, every: bool = False) -> dict:
            """Per level, the (prior, class) pairs above `score_thr`, best `nms_pre` (all
            of them with `every`), as boxes clipped to the image (those of no size
            dropped): boxes, scores, labels, and each one's point, stride and mask kernel
            (and the prototypes)."""
            model = self.model
            head = model.bbox_head
            cls_scores, box_distances, kernel_preds, mask_feat = head(model.extract_feat(image))
            found = {key: [] for key in ("scores", "labels", "points", "strides",
                                         "distances", "kernels")}  # fmt: skip
            for level, (cls, dist, kernel) in enumerate(
                    zip(cls_scores, box_distances, kernel_preds, strict=True)):
                classes = cls.shape[1]
                scores = sigmoid(cls[0].permute(1, 2, 0).reshape(-1))
                pairs = count_up(scores).to(torch.int64)  # prior * classes + class
                above = scores > score_thr
                scores, pairs = scores[above], pairs[above]
                scores, order = scores.sort(descending=True)
                if not every:
                    keep = first(scores, self.cfg.nms_pre)
                    scores, order = scores[keep], order[keep]
                pairs = pairs[order]
                priors = torch.div(pairs, classes, rounding_mode="floor")
                found["scores"].append(scores)
                found["labels"].append(pairs - priors * classes)
                found["points"].append(self.points(cls, self.strides[level])[priors])
                found["strides"].append(torch.full_like(scores, self.strides[level]))
                found["distances"].append(dist[0].permute(1, 2, 0).reshape(-1, 4)[priors])
                found["kernels"].append(
                    kernel[0].permute(1, 2, 0).reshape(-1, head.num_gen_params)[priors])
            found = {key: torch.cat(values) for key, values in found.items()}
            points, distances = found.pop("points"), found.pop("distances")
            boxes = torch.cat([points - distances[:, :2], points + distances[:, 2:]], dim=1)
            limit = torch.stack([image_size[1], image_size[0]]).repeat(2)
            boxes = torch.minimum(boxes.clamp(min=0), limit)
            keep = torch.ones_like(found["scores"], dtype=torch.bool)
            min_size = self.cfg.get("min_bbox_size", -1)
            if min_size >= 0:
                sizes = boxes[:, 2:] - boxes[:, :2]
                keep = (sizes[:, 0] > min_size) & (sizes[:, 1] > min_size)
            found = {key: value[keep] for key, value in found.items()}
            return {**found, "boxes": boxes[keep], "points": points[keep],
                    "mask_feat": mask_feat}  # fmt: skip

        def mask_logits(self, mask_feat, points, strides, kernels):
            """`_mask_predict_by_feat_single`: each instance's three 1x1 dynamic
            convolutions over [coordinates relative to its point / (stride * 8),
            prototypes], as batched matrix products."""
            head = self.model.bbox_head
            height, width = mask_feat.shape[-2:]
            grid = self.points(mask_feat, self.strides[0])  # (h*w, 2)
            relative = (points[:, None, :] - grid[None]).permute(0, 2, 1)
            relative = relative / (strides[:, None, None] * 8)  # (n, 2, h*w)
            count = points.shape[0]
            prototypes = mask_feat.reshape(1, -1, height * width)
            x = torch.cat([relative, prototypes.expand(count, -1, -1)], dim=1)
            sizes = list(head.weight_nums) + list(head.bias_nums)
            params = torch.split(kernels, sizes, dim=1)
            layers = len(head.weight_nums)
            for index in range(layers):
                inputs = x.shape[1]
                outputs = head.bias_nums[index]  # one bias per output channel
                weight = params[index].reshape(count, outputs, inputs)
                bias = params[layers + index].reshape(count, outputs, 1)
                x = torch.bmm(weight, x) + bias
                if index < layers - 1:
                    x = torch.relu(x)
            return x.reshape(count, height, width)

        def forward(self, image, image_size, score_thr, max_detections):
            found = self.candidates(image, image_size, score_thr)
            boxes, scores, labels = found["boxes"], found["scores"], found["labels"]
            order = batched_nms(boxes, scores, labels, self.cfg.nms.iou_threshold)
            order = order[first(order, max_detections)]
            masks = self.mask_logits(found["mask_feat"], found["points"][order],
                                     found["strides"][order], found["kernels"][order])
            return boxes[order], scores[order], labels[order], masks

    return Graph(model).eval()
