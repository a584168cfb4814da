"""mmcv's compiled kernels (`mmcv._ext`) written with torchvision and torch.

mmcv.ops loads its kernels from the compiled module `mmcv._ext`, and building it
takes a C++20 compiler and ~15 minutes on 2 cores (a matching CUDA toolkit for
GPU ops). The model cardd trains reaches only a few of them, and torchvision,
which cardd installs anyway, ships maintained CPU and CUDA kernels for most:

    deform_conv_forward / _backward_input / _backward_parameters   torchvision deform_conv2d (*)
    modulated_deform_conv_forward / _backward                      torchvision deform_conv2d (*)
    roi_align_forward / _backward (average pooling)                torchvision roi_align
    nms                                                            torchvision nms
    sigmoid_focal_loss_forward / _backward                         torch (mmcv's formula)

(*) on GPUs; on the CPU the same operation as bilinear sampling and a matmul in
torch (`sampled_deform_conv`), several times faster than torchvision's CPU kernel.

The functions keep `mmcv._ext`'s calling convention: they fill the output and
gradient tensors mmcv passes in. Backward passes run torchvision's own autograd.
Every other kernel mmcv names resolves (mmcv checks that they exist at import)
to a function that raises a one-line error naming the op and the way to the
compiled build. `import cardd` registers this module's functions as mmcv's kernel
module `mmcv._ext` where mmcv has none (the mmcv-lite wheel): see
`cardd.openmmlab.ext_finder`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: What to do when an op is not written here.
COMPILED_HINT = "install mmcv's compiled kernels: CARDD_OPS=compiled make setup"


class UnsupportedOp(RuntimeError):
    """An mmcv op that cardd's torchvision kernels do not provide."""


def _deform_conv(input, offset, weight, stride, padding, dilation, mask=None, bias=None):
    """Deformable convolution (v1, or v2 with `mask`), computed in float32 at least and
    outside autocast, in the forward and in any backward alike: under AMP the
    gradients are those of the function the forward ran (see `_deform_kernel`)."""
    kernel = _deform_kernel(input.device)
    with torch.autocast(input.device.type, enabled=False):
        return kernel(input, offset, weight, stride, padding, dilation, mask, bias)


def torchvision_kernels(device_type: str = "cpu"):
    """`torch.ops.torchvision`: torchvision's kernels, for a call on `device_type`.

    `import torchvision` takes about 1 s on 2 cores (its models, datasets and
    transforms; `torchvision.ops` imports `torch._dynamo`): most of what `cardd infer`
    of one photo adds to importing mmdet. A forward pass without gradients or
    autocast (inference in float32) needs none of it: loading torchvision's kernel
    library registers the kernels. Gradients and autocast do need the package: this
    torchvision registers its kernels' autograd and autocast rules in Python
    (`torchvision/_autograd_registrations.py`), so then it is imported, once.
    """
    plain = not torch.is_grad_enabled() and not torch.is_autocast_enabled(device_type)
    if not plain or not _load_kernel_library():
        import torchvision  # noqa: F401  (the kernels with their autograd and autocast rules)
    return torch.ops.torchvision


def _load_kernel_library() -> bool:
    """Load torchvision's kernel library without running its package; False when it is
    not where this torchvision keeps it."""
    if hasattr(torch.ops.torchvision, "nms"):
        return True
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torchvision")  # finds, does not run, the package
    folders = (spec.submodule_search_locations or []) if spec else []
    libraries = [
        Path(folder) / f"{name}{suffix}"
        for folder in folders
        for name in ("_C_stable", "_C")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    ]
    library = next((path for path in libraries if path.is_file()), None)
    if library is None:
        return False
    torch.ops.load_library(str(library))
    return True


def _deform_kernel(device: torch.device) -> Callable:
    """torchvision's kernel on GPUs; `sampled_deform_conv` on the CPU, where torchvision's
    is 2-6x slower forward and 6-14x slower forward and backward (scripts/bench/bench_ops.py)."""
    return sampled_deform_conv if device.type == "cpu" else torchvision_deform_conv


def torchvision_deform_conv(input, offset, weight, stride, padding, dilation, mask=None, bias=None):
    """torchvision's deformable convolution kernel, on any device, in float32 at least.

    Under AMP mmcv hands DCN float16 tensors. torchvision's autocast rule would run the
    forward in float32, but the backward runs outside autocast: in float16 it would
    differentiate another function (sampling positions rounded to 0.25 px at 256-511
    px). Widening here, in forward and backward alike, makes both the float32
    function, whatever autocast says (as `sampled_deform_conv` does on the CPU).
    """
    dtype, wide = input.dtype, _wide(input.dtype)
    input, offset, weight = input.to(wide), offset.to(wide), weight.to(wide)
    # what torchvision.ops.deform_conv2d does before its kernel: zeros for an absent
    # mask or bias, the groups from the shapes
    use_mask = mask is not None
    mask = mask.to(wide) if use_mask else input.new_zeros((input.shape[0], 1))
    bias = bias.to(wide) if bias is not None else input.new_zeros(weight.shape[0])
    kernel_h, kernel_w = weight.shape[-2:]
    offset_groups = offset.shape[1] // (2 * kernel_h * kernel_w)
    if offset_groups == 0 or offset.shape[1] != 2 * offset_groups * kernel_h * kernel_w:
        raise ValueError(
            f"offset has {offset.shape[1]} channels, not a multiple of 2 x {kernel_h}x{kernel_w}"
        )
    (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w) = (
        _pair(stride), _pair(padding), _pair(dilation)
    )  # fmt: skip
    result = torchvision_kernels(input.device.type).deform_conv2d(
        input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
        input.shape[1] // weight.shape[1], offset_groups, use_mask,
    )  # fmt: skip
    return result.to(dtype)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The precision a kernel computes in: float32 for float16 and bfloat16 inputs."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


#: The most memory the sampled columns of one call may take (see sampled_deform_conv).
COLUMN_BYTES = 256 * 2**20


def sampled_deform_conv(input, offset, weight, stride, padding, dilation, mask=None, bias=None):
    """torchvision's `deform_conv2d` as bilinear sampling (`grid_sample`) and one matmul.

    Every kernel tap of every output pixel reads the input at its own fractional
    position (zero outside the image, as torchvision and mmcv do); the samples of
    all taps are stacked like im2col's columns and multiplied by the weight.
    PyTorch's vectorised, multi-threaded `grid_sample` and its autograd make the
    backward pass too, where torchvision's CPU kernel loops over every element on
    one thread. Offsets are (dy, dx) per deformable group and tap, as torchvision's.
    Positions are computed in float32 at least, whatever the input's precision
    (float16 would round a position near pixel 1000 to a multiple of 0.5).

    The columns hold 9 samples per input value: a batch whose columns would pass
    `COLUMN_BYTES` runs a few images at a time (as mmcv's `im2col_step` does), so
    `cardd infer --batch-size 8` at 1333x800 does not need 1.2 GB per layer.
    """
    batch, channels, height, width = input.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    taps, groups = kernel_h * kernel_w, channels // group_channels
    out_h, out_w = offset.shape[-2:]
    per_image = channels * taps * out_h * out_w * max(4, input.element_size())
    step = max(1, COLUMN_BYTES // per_image)
    if batch > step:
        return torch.cat([
            sampled_deform_conv(
                input[i : i + step], offset[i : i + step], weight, stride, padding, dilation,
                None if mask is None else mask[i : i + step], bias,
            )
            for i in range(0, batch, step)
        ])  # fmt: skip
    deform_groups = offset.shape[1] // (2 * taps)
    wide = _wide(input.dtype)
    on = dict(device=input.device, dtype=wide)
    tap_y = (torch.arange(kernel_h, **on) * dilation[0]).repeat_interleave(kernel_w)
    tap_x = (torch.arange(kernel_w, **on) * dilation[1]).repeat(kernel_h)
    rows = torch.arange(out_h, **on) * stride[0] - padding[0]
    cols = torch.arange(out_w, **on) * stride[1] - padding[1]
    offsets = offset.to(wide).view(batch, deform_groups, taps, 2, out_h, out_w)
    y = tap_y.view(taps, 1, 1) + rows.view(1, out_h, 1) + offsets[:, :, :, 0]
    x = tap_x.view(taps, 1, 1) + cols.view(1, 1, out_w) + offsets[:, :, :, 1]
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the outer pixel edges
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    samples = torch.nn.functional.grid_sample(
        input.to(wide).reshape(batch * deform_groups, channels // deform_groups, height, width),
        grid.view(batch * deform_groups, taps * out_h, out_w, 2),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )  # fmt: skip
    samples = samples.view(batch, deform_groups, channels // deform_groups, taps, out_h, out_w)
    if mask is not None:
        samples = samples * mask.to(wide).view(batch, deform_groups, 1, taps, out_h, out_w)
    columns = samples.reshape(batch, groups, group_channels * taps, out_h * out_w)
    kernel = weight.reshape(groups, out_channels // groups, group_channels * taps)
    output = torch.matmul(kernel.to(columns.dtype), columns).view(batch, out_channels, out_h, out_w)
    if bias is not None:
        output = output + bias.to(output.dtype).view(1, out_channels, 1, 1)
    return output.to(input.dtype)


def _grads(function: Callable, inputs: list[torch.Tensor], grad_output: torch.Tensor):
    """Gradients of `function(*inputs)` for `grad_output`, by autograd (a second forward)."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        output = function(*leaves)
        return torch.autograd.grad(output, leaves, grad_output, allow_unused=True)


#: On the CPU the forward's graph is kept for the backward only while the sampled
#: columns it holds (9 samples per input value) stay under this size; larger layers
#: are sampled again in the backward instead. On GPUs torchvision's graph holds only
#: the layer's inputs, which mmcv keeps anyway: it is always kept.
KEEP_GRAPH_BYTES = 64 * 2**20


def _forward_for_backward(
    function: Callable, inputs: list[torch.Tensor], buffer: torch.Tensor, column_bytes: int
) -> torch.Tensor:
    """`function(*inputs)`; during training, with its autograd graph left on `buffer`.

    mmcv's DCN functions hand the same scratch tensor to the forward and the backward
    kernels, so the graph kept on it lets the backward take the gradients of exactly
    the forward that ran, without running it again. "Training" is seen from the
    activations: inside mmcv's autograd Function grad mode is off, but the input or
    the offsets require grad exactly when a backward will follow (a parameter's flag
    says nothing: weights require grad under `torch.no_grad()` too).
    """
    training = any(t is not None and t.requires_grad for t in inputs[:2])
    keep = inputs[0].device.type != "cpu" or column_bytes <= KEEP_GRAPH_BYTES
    if not (training and keep):
        return function(*inputs)
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        output = function(*leaves)
    buffer._cardd_graph = (leaves, output)
    return output.detach()


def _kept_grads(buffer: torch.Tensor, grad_output: torch.Tensor):
    """The gradients of the forward whose graph `_forward_for_backward` left on `buffer`,
    or None (no graph kept: the caller runs the forward again)."""
    graph = buffer.__dict__.pop("_cardd_graph", None)
    if graph is None:
        return None
    leaves, output = graph
    return torch.autograd.grad(output, leaves, grad_output.to(output.dtype), allow_unused=True)


def _column_bytes(input: torch.Tensor, weight: torch.Tensor, output: torch.Tensor) -> int:
    """The size of the sampled columns of a DCN call (the CPU path's largest tensor)."""
    taps = weight.shape[2] * weight.shape[3]
    return input.shape[0] * input.shape[1] * taps * output.shape[2] * output.shape[3] * 4


def deform_conv_forward(
    input, weight, offset, output, columns, ones, *, kW, kH, dW, dH, padW, padH,
    dilationW, dilationH, group, deformable_group, im2col_step,
):  # fmt: skip
    """DCN (v1) forward into `output`; groups are implied by the tensors' shapes."""

    def run(x, o, w):
        return _deform_conv(x, o, w, (dH, dW), (padH, padW), (dilationH, dilationW))

    bytes_ = _column_bytes(input, weight, output)
    # `set_`: mmcv's output takes the result's storage (a kept graph's output shares it)
    output.set_(_forward_for_backward(run, [input, offset, weight], columns, bytes_))


def deform_conv_backward_input(
    input, offset, grad_output, grad_input, grad_offset, weight, columns, *, kW, kH, dW, dH,
    padW, padH, dilationW, dilationH, group, deformable_group, im2col_step,
):  # fmt: skip
    """DCN gradients with respect to the input and the offsets.

    From the forward's own graph when it was kept on `columns`, else by running the
    forward again. The weight's gradient comes out of the same autograd pass; it is
    left in `columns`, the scratch buffer mmcv hands to this call and then to
    `deform_conv_backward_parameters`, which takes it from there.
    """

    def run(x, o, w):
        return _deform_conv(x, o, w, (dH, dW), (padH, padW), (dilationH, dilationW))

    kept = _kept_grads(columns, grad_output)
    gx, go, gw = kept if kept is not None else _grads(run, [input, offset, weight], grad_output)
    grad_input.copy_(gx)
    grad_offset.copy_(go)
    columns.resize_(gw.shape).copy_(gw)


def deform_conv_backward_parameters(
    input, offset, grad_output, grad_weight, columns, ones, *, kW, kH, dW, dH, padW, padH,
    dilationW, dilationH, group, deformable_group, scale, im2col_step,
):  # fmt: skip
    """DCN gradient with respect to the weight, added to `grad_weight` times `scale`.

    Taken from `columns` when `deform_conv_backward_input` just computed it; else
    computed here. The output is linear in the weight, so its gradient does not
    depend on the weight's values (mmcv does not pass them): zeros stand in.
    """
    kept = _kept_grads(columns, grad_output)  # when only the weight needs a gradient
    if kept is not None:
        gw = kept[2]
    elif columns.shape == grad_weight.shape:
        gw = columns.clone()
        columns.resize_(0)
    else:

        def run(w):
            return _deform_conv(input, offset, w, (dH, dW), (padH, padW), (dilationH, dilationW))

        (gw,) = _grads(run, [torch.zeros_like(grad_weight)], grad_output)
    grad_weight.add_(gw, alpha=scale)


def modulated_deform_conv_forward(
    input, weight, bias, ones, offset, mask, output, columns, *, kernel_h, kernel_w,
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group, deformable_group,
    with_bias,
):  # fmt: skip
    """DCNv2 forward into `output` (its graph kept on `ones` for the backward in training)."""
    inputs = [input, offset, weight, mask] + ([bias] if with_bias else [])
    bytes_ = _column_bytes(input, weight, output)
    output.set_(_forward_for_backward(_modulated(locals()), inputs, ones, bytes_))


def modulated_deform_conv_backward(
    input, weight, bias, ones, offset, mask, columns, grad_input, grad_weight, grad_bias,
    grad_offset, grad_mask, grad_output, *, kernel_h, kernel_w, stride_h, stride_w, pad_h,
    pad_w, dilation_h, dilation_w, group, deformable_group, with_bias,
):  # fmt: skip
    """DCNv2 gradients of input, weight, bias, offset and mask, into the given tensors:
    from the forward's graph kept on `ones`, else by running the forward again."""
    inputs = [input, offset, weight, mask] + ([bias] if with_bias else [])
    grads = _kept_grads(ones, grad_output)
    if grads is None:
        grads = _grads(_modulated(locals()), inputs, grad_output)
    for target, grad in zip([grad_input, grad_offset, grad_weight, grad_mask], grads, strict=False):
        target.copy_(grad)
    if with_bias:
        grad_bias.copy_(grads[4])


def _modulated(call: dict) -> Callable:
    """DCNv2 as a function of (input, offset, weight, mask[, bias]), with the geometry of
    an mmcv kernel call (its keyword arguments, `call`)."""
    geometry = (
        (call["stride_h"], call["stride_w"]),
        (call["pad_h"], call["pad_w"]),
        (call["dilation_h"], call["dilation_w"]),
    )

    def run(x, o, w, m, *b):
        return _deform_conv(x, o, w, *geometry, mask=m, bias=b[0] if b else None)

    return run


_POOL_AVG = 1  # mmcv's pool_mode: 0 max, 1 average


def roi_align_forward(
    input, rois, output, argmax_y, argmax_x, *, aligned_height, aligned_width, spatial_scale,
    sampling_ratio, pool_mode, aligned,
):  # fmt: skip
    """RoIAlign (average pooling) of `rois` ([batch index, x1, y1, x2, y2]) into `output`."""
    if pool_mode != _POOL_AVG:
        raise UnsupportedOp(f"RoIAlign with max pooling is not in torchvision; {COMPILED_HINT}")
    output.copy_(_roi_align(input, rois, aligned_height, aligned_width, spatial_scale,
                            sampling_ratio, aligned))  # fmt: skip


def _roi_align(input, rois, height, width, spatial_scale, sampling_ratio, aligned):
    """torchvision's RoIAlign kernel on [K, 5] rois, as `torchvision.ops.roi_align` calls it."""
    return torchvision_kernels(input.device.type).roi_align(
        input, rois, float(spatial_scale), int(height), int(width),
        int(sampling_ratio), bool(aligned),
    )  # fmt: skip


def roi_align_backward(
    grad_output, rois, argmax_y, argmax_x, grad_input, *, aligned_height, aligned_width,
    spatial_scale, sampling_ratio, pool_mode, aligned,
):  # fmt: skip
    """RoIAlign's gradient with respect to the feature map, into `grad_input`.

    Average pooling is linear in the features, so the gradient does not depend on
    their values (mmcv does not keep them): zeros of the right shape stand in.
    """
    if pool_mode != _POOL_AVG:
        raise UnsupportedOp(f"RoIAlign with max pooling is not in torchvision; {COMPILED_HINT}")

    def run(x):
        return _roi_align(
            x, rois, aligned_height, aligned_width, spatial_scale, sampling_ratio, aligned
        )

    (gx,) = _grads(run, [torch.zeros_like(grad_input)], grad_output)
    grad_input.copy_(gx)


def nms(boxes, scores, *, iou_threshold, offset):
    """Indices of the boxes kept, best score first. `offset=1` is the legacy pixel
    convention (width = x2 - x1 + 1), obtained by widening every box by one."""
    if offset:
        boxes = boxes.clone()
        boxes[:, 2:] += offset
    return torchvision_kernels(boxes.device.type).nms(boxes, scores, float(iou_threshold))


def _focal_terms(input, target, gamma, alpha):
    """mmcv's per-element sigmoid focal loss and its gradient (its CUDA kernel's formulas),
    computed in float32 at least: mmcv's float16 kernel clamps p at FLT_MIN, which is 0
    in float16, so a confident logit gives log(0) = -inf; here p is clamped at float32's
    smallest normal, as mmcv's float32 kernel does, and the results cast back."""
    dtype, input = input.dtype, input.to(_wide(input.dtype))
    loss, grad = _focal_terms_wide(input, target, gamma, alpha)
    return loss.to(dtype), grad.to(dtype)


def _focal_terms_wide(input, target, gamma, alpha):
    classes = torch.arange(input.size(1), device=input.device)
    positive = (target.view(-1, 1) == classes.view(1, -1)).to(input.dtype)
    p = torch.sigmoid(input)
    tiny = torch.finfo(input.dtype).tiny
    log_p, log_not_p = torch.log(p.clamp(min=tiny)), torch.log((1 - p).clamp(min=tiny))
    loss = -positive * alpha * (1 - p).pow(gamma) * log_p
    loss = loss - (1 - positive) * (1 - alpha) * p.pow(gamma) * log_not_p
    grad = -positive * alpha * (1 - p).pow(gamma) * (1 - p - gamma * p * log_p)
    grad = grad - (1 - positive) * (1 - alpha) * p.pow(gamma) * (gamma * (1 - p) * log_not_p - p)
    return loss, grad


def _class_weights(weight, target, like):
    if weight is None or weight.numel() == 0:
        return torch.ones((like.size(0), 1), dtype=like.dtype, device=like.device)
    return weight[target].view(-1, 1).to(like.dtype)


def sigmoid_focal_loss_forward(input, target, weight, output, *, gamma, alpha):
    """Per-element sigmoid focal loss into `output` (targets are class indices;
    `num_classes` means background), weighted per target class when given."""
    loss, _ = _focal_terms(input, target, gamma, alpha)
    output.copy_(loss * _class_weights(weight, target, input))


def sigmoid_focal_loss_backward(input, target, weight, grad_input, *, gamma, alpha):
    """d(loss)/d(input) per element into `grad_input` (mmcv scales it afterwards)."""
    _, grad = _focal_terms(input, target, gamma, alpha)
    grad_input.copy_(grad * _class_weights(weight, target, input))


def get_compiler_version() -> str:
    """What mmcv/mmdet's environment report shows for the kernels' compiler."""
    return "none: cardd's torchvision kernels (cardd/openmmlab/kernels.py)"


def get_compiling_cuda_version() -> str:
    """The CUDA of the kernels: torchvision's, which is torch's."""
    return torch.version.cuda or "not available"


#: The kernels written here; everything else mmcv names is `unsupported`.
IMPLEMENTED = (
    "get_compiler_version",
    "get_compiling_cuda_version",
    "deform_conv_forward",
    "deform_conv_backward_input",
    "deform_conv_backward_parameters",
    "modulated_deform_conv_forward",
    "modulated_deform_conv_backward",
    "roi_align_forward",
    "roi_align_backward",
    "nms",
    "sigmoid_focal_loss_forward",
    "sigmoid_focal_loss_backward",
)


#: Every kernel mmcv 2.1.0's ops modules ask `mmcv._ext` for (`ext_loader.load_ext`),
#: read from its sources (`tests/openmmlab/test_kernels.py` reads them again): mmcv checks
#: at import that each exists. Any other name is an AttributeError, as in a real module.
MMCV_KERNELS = frozenset(
    {
        "active_rotated_filter_backward",
        "active_rotated_filter_forward",
        "assign_score_withk_backward",
        "assign_score_withk_forward",
        "ball_query_forward",
        "bbox_overlaps",
        "bezier_align_backward",
        "bezier_align_forward",
        "bias_act",
        "border_align_backward",
        "border_align_forward",
        "box_iou_quadri",
        "box_iou_rotated",
        "carafe_backward",
        "carafe_forward",
        "carafe_naive_backward",
        "carafe_naive_forward",
        "chamfer_distance_backward",
        "chamfer_distance_forward",
        "contour_expand",
        "convex_giou",
        "convex_iou",
        "correlation_backward",
        "correlation_forward",
        "deform_conv_backward_input",
        "deform_conv_backward_parameters",
        "deform_conv_forward",
        "deform_roi_pool_backward",
        "deform_roi_pool_forward",
        "diff_iou_rotated_sort_vertices_forward",
        "dynamic_point_to_voxel_backward",
        "dynamic_point_to_voxel_forward",
        "dynamic_voxelize_forward",
        "filtered_lrelu",
        "filtered_lrelu_act_",
        "furthest_point_sampling_forward",
        "furthest_point_sampling_with_dist_forward",
        "fused_bias_leakyrelu",
        "fused_indice_conv_forward",
        "gather_points_backward",
        "gather_points_forward",
        "get_compiler_version",
        "get_compiling_cuda_version",
        "get_indice_pairs_2d_backward",
        "get_indice_pairs_2d_forward",
        "get_indice_pairs_3d_backward",
        "get_indice_pairs_3d_forward",
        "get_indice_pairs_4d_forward",
        "group_points_backward",
        "group_points_forward",
        "hard_voxelize_forward",
        "indice_conv_backward",
        "indice_conv_forward",
        "indice_maxpool_backward",
        "indice_maxpool_forward",
        "iou3d_boxes_overlap_bev_forward",
        "iou3d_nms3d_forward",
        "iou3d_nms3d_normal_forward",
        "knn_forward",
        "masked_col2im_forward",
        "masked_im2col_forward",
        "min_area_polygons",
        "modulated_deform_conv_backward",
        "modulated_deform_conv_forward",
        "ms_deform_attn_backward",
        "ms_deform_attn_forward",
        "nms",
        "nms_match",
        "nms_quadri",
        "nms_rotated",
        "pixel_group",
        "points_in_boxes_all_forward",
        "points_in_boxes_cpu_forward",
        "points_in_boxes_part_forward",
        "points_in_polygons_forward",
        "prroi_pool_backward",
        "prroi_pool_coor_backward",
        "prroi_pool_forward",
        "psamask_backward",
        "psamask_forward",
        "riroi_align_rotated_backward",
        "riroi_align_rotated_forward",
        "roi_align_backward",
        "roi_align_forward",
        "roi_align_rotated_backward",
        "roi_align_rotated_forward",
        "roi_pool_backward",
        "roi_pool_forward",
        "roiaware_pool3d_backward",
        "roiaware_pool3d_forward",
        "roipoint_pool3d_forward",
        "rotated_feature_align_backward",
        "rotated_feature_align_forward",
        "sigmoid_focal_loss_backward",
        "sigmoid_focal_loss_forward",
        "softmax_focal_loss_backward",
        "softmax_focal_loss_forward",
        "softnms",
        "stack_ball_query_forward",
        "stack_group_points_backward",
        "stack_group_points_forward",
        "sync_bn_backward_data",
        "sync_bn_backward_param",
        "sync_bn_forward_mean",
        "sync_bn_forward_output",
        "sync_bn_forward_var",
        "three_interpolate_backward",
        "three_interpolate_forward",
        "three_nn_forward",
        "tin_shift_backward",
        "tin_shift_forward",
        "upfirdn2d",
    }
)


def unsupported(name: str) -> Callable:
    """A stand-in for an mmcv kernel not written here: it exists (mmcv checks at
    import) and says, when called, which op is missing and how to get it."""

    def missing(*args, **kwargs):
        raise UnsupportedOp(
            f"mmcv op {name!r} is not in cardd's torchvision kernels; {COMPILED_HINT}"
        )

    missing.__name__ = name
    return missing


def __getattr__(name: str):
    if name in MMCV_KERNELS:
        return unsupported(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
