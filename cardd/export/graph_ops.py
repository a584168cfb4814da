"""Tensor steps that trace into standard ONNX, shared by the exported graphs.

mmdet's test paths lean on Python loops, `nonzero` counts and numbers read off
tensors, which a trace freezes at the example's values; these write the same
arithmetic so that every count stays a dimension of the graph.
"""

from __future__ import annotations


def count_up(like):
    """0, 1, 2... as long as the first axis of `like` (float32): `arange` whose length
    stays a dimension of the graph rather than a number baked in at tracing."""
    import torch

    return torch.ones_like(like, dtype=torch.float32).cumsum(0) - 1


def grid_points(feature_map, stride: int, offset: float = 0.0):
    """Every position of a feature map [1, C, H, W] as (x, y) in the input, row by row:
    mmdet's `single_level_grid_priors` of its anchor and point generators; the map's size
    stays a dimension of the graph."""
    import torch

    ys = (count_up(feature_map[0, 0, :, 0]) + offset) * stride
    xs = (count_up(feature_map[0, 0, 0, :]) + offset) * stride
    grid_x = xs[None, :] + ys[:, None] * 0
    grid_y = ys[:, None] + xs[None, :] * 0
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def first(values, count):
    """A mask of the first `count` (a tensor or a number) of the 1-D `values`, traced so
    that fewer entries than `count` is fine."""
    import torch

    return torch.ones_like(values, dtype=torch.int64).cumsum(0) <= count


def batched_nms(boxes, scores, groups, iou_threshold: float):
    """mmcv's `batched_nms` with its offset trick (every group shifted past the largest
    coordinate): indices kept, best score first."""
    import torch
    from torchvision.ops import nms

    largest = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    shifted = boxes + (groups.to(boxes.dtype) * (largest + 1))[:, None]
    return nms(shifted, scores, iou_threshold)


def sigmoid(logits):
    """The logistic function as 1 / (1 + exp(-x)), not ONNX `Sigmoid`: onnxruntime's
    Sigmoid is accurate to 1e-7 absolute only, so the RPN's small objectness scores
    (5e-5 at a logit of -10) came out 0.2% off (at -18: 4x), enough to reorder the
    proposals at the top-k cut and change which reach the box head (found on the demo
    model). Exp keeps its relative precision: the ranking is PyTorch's."""
    import torch

    return 1 / (1 + torch.exp(-logits))
