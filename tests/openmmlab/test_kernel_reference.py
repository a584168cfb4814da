"""mmcv's kernels against answers known by hand: the conventions, on whatever kernels are installed.

Each case goes through mmcv's public ops (`mmcv.ops.deform_conv2d`, `RoIAlign`, `nms`,
`sigmoid_focal_loss`), so it checks cardd's kernels in the default install and
mmcv's compiled ones with `CARDD_OPS=compiled`: the same expectations hold for both.
The answers come from small direct implementations of the definitions below (one
bilinear sample at a time, in Python) or in closed form on linear ramps, where an
offset read as (dx, dy) instead of (dy, dx), a missing half-pixel shift or a mask
left out changes the numbers. Runs on the device `CARDD_TEST_DEVICE` names
(default cpu).
"""

from __future__ import annotations

import math
import os

import pytest
import torch

DEVICE = torch.device(os.environ.get("CARDD_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip("CARDD_TEST_DEVICE=cuda but no GPU is visible", allow_module_level=True)

F64 = dict(dtype=torch.float64, device=DEVICE)


def _mmcv_has_cpu_focal_loss() -> bool:
    import mmcv._ext

    return mmcv._ext.__file__.endswith(".py")  # cardd's kernels; mmcv's own have CUDA only


needs_focal_kernel = pytest.mark.skipif(
    DEVICE.type == "cpu" and not _mmcv_has_cpu_focal_loss(),
    reason="mmcv's compiled kernels have no CPU sigmoid focal loss",
)


def ramp(height: int, width: int, dy: float = 10.0, dx: float = 1.0, **like) -> torch.Tensor:
    """I(y, x) = dy * y + dx * x: bilinear sampling reproduces it exactly inside the map."""
    ys = torch.arange(height, **like).view(-1, 1)
    xs = torch.arange(width, **like).view(1, -1)
    return dy * ys + dx * xs


# ---- deformable convolution ------------------------------------------------------------


def dcn_sample(image: torch.Tensor, y: float, x: float) -> float:
    """The value DCN reads at (y, x): bilinear, with zeros outside the map (mmcv's and
    torchvision's rule: nothing at all beyond one pixel outside)."""
    height, width = image.shape
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0

    def pixel(r: int, c: int) -> float:
        return float(image[r, c]) if 0 <= r < height and 0 <= c < width else 0.0

    return (
        (1 - ly) * (1 - lx) * pixel(y0, x0)
        + (1 - ly) * lx * pixel(y0, x0 + 1)
        + ly * (1 - lx) * pixel(y0 + 1, x0)
        + ly * lx * pixel(y0 + 1, x0 + 1)
    )


def dcn_by_definition(x, offset, weight, stride=1, padding=0, dilation=1, groups=1,
                      deform_groups=1, mask=None, bias=None):  # fmt: skip
    """Deformable convolution straight from its definition: tap k = i * kw + j of output
    pixel (oy, ox) reads channel c at (oy*stride - padding + i*dilation + dy,
    ox*stride - padding + j*dilation + dx), where (dy, dx) = offset channels (2k, 2k+1)
    of c's deformable group, times the mask channel k of that group (DCNv2)."""
    batch, channels, _, _ = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    out_h, out_w = offset.shape[-2:]
    per_deform = channels // deform_groups
    out = torch.zeros(batch, out_channels, out_h, out_w, dtype=torch.float64)
    for n in range(batch):
        for o in range(out_channels):
            group = o // (out_channels // groups)
            for oy in range(out_h):
                for ox in range(out_w):
                    total = 0.0 if bias is None else float(bias[o])
                    for cg in range(group_channels):
                        c = group * group_channels + cg
                        d = c // per_deform
                        for i in range(kh):
                            for j in range(kw):
                                k = i * kw + j
                                dy = float(offset[n, d * 2 * kh * kw + 2 * k, oy, ox])
                                dx = float(offset[n, d * 2 * kh * kw + 2 * k + 1, oy, ox])
                                y = oy * stride - padding + i * dilation + dy
                                xx = ox * stride - padding + j * dilation + dx
                                value = dcn_sample(x[n, c], y, xx)
                                if mask is not None:
                                    value *= float(mask[n, d * kh * kw + k, oy, ox])
                                total += float(weight[o, cg, i, j]) * value
                    out[n, o, oy, ox] = total
    return out


def test_one_tap_reads_the_ramp_at_its_fractional_offset():
    """A 1x1 kernel of weight 1 with offset (dy, dx) = (0.25, 0.75) reads I(y + 0.25,
    x + 0.75) = I + 10 * 0.25 + 0.75 = I + 3.25 inside the map; read as (dx, dy) it
    would be I + 7.75."""
    from mmcv.ops import deform_conv2d

    image = ramp(5, 6, **F64).view(1, 1, 5, 6)
    offset = torch.zeros(1, 2, 5, 6, **F64)
    offset[:, 0], offset[:, 1] = 0.25, 0.75
    weight = torch.ones(1, 1, 1, 1, **F64)
    out = deform_conv2d(image, offset, weight, 1, 0, 1, 1, 1)
    assert out[0, 0, 2, 2].item() == pytest.approx(22 + 3.25, abs=1e-12)
    inside = out[0, 0, :4, :5]  # the last row and column read past the map's edge
    assert torch.allclose(inside, image[0, 0, :4, :5] + 3.25, atol=1e-12)
    # the edge: the sample at x = 5.75 keeps 0.25 of the last column, the rest is zero
    assert out[0, 0, 1, 5].item() == pytest.approx(0.25 * (0.75 * 15 + 0.25 * 25), abs=1e-12)
    assert torch.allclose(out.cpu(), dcn_by_definition(image.cpu(), offset.cpu(), weight.cpu()))


def test_the_mask_scales_each_tap():
    from mmcv.ops import modulated_deform_conv2d

    image = ramp(5, 6, **F64).view(1, 1, 5, 6)
    offset = torch.zeros(1, 2, 5, 6, **F64)
    offset[:, 0], offset[:, 1] = 0.25, 0.75
    mask = torch.full((1, 1, 5, 6), 0.5, **F64)
    mask[..., 0, 0] = 0.0
    weight = torch.ones(1, 1, 1, 1, **F64)
    bias = torch.tensor([2.0], **F64)
    out = modulated_deform_conv2d(image, offset, mask, weight, bias, 1, 0, 1, 1, 1)
    assert out[0, 0, 2, 2].item() == pytest.approx(0.5 * (22 + 3.25) + 2, abs=1e-12)
    assert out[0, 0, 0, 0].item() == pytest.approx(2.0, abs=1e-12)  # masked out: the bias


CASES = {  # stride, padding, dilation, groups, deform_groups, with mask
    "3x3": (1, 1, 1, 1, 1, False),
    "3x3 modulated": (1, 1, 1, 1, 1, True),
    "stride 2": (2, 1, 1, 1, 1, True),
    "dilation 2": (1, 2, 2, 1, 1, False),
    "groups 2": (1, 1, 1, 2, 1, True),
    "deformable groups 2": (1, 1, 1, 1, 2, True),
}


@pytest.mark.parametrize("case", CASES)
def test_deformable_convolution_by_its_definition(case):
    """Random offsets up to 2.5 px, many crossing the border, against the definition."""
    from mmcv.ops import deform_conv2d, modulated_deform_conv2d

    stride, padding, dilation, groups, deform_groups, modulated = CASES[case]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 4, 5, 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 4 // groups, 3, 3, generator=generator, dtype=torch.float64)
    out_h = (5 + 2 * padding - dilation * 2 - 1) // stride + 1
    out_w = (6 + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = 5 * torch.rand(1, deform_groups * 18, out_h, out_w, generator=generator) - 2.5
    offset = offset.double()
    mask = torch.rand(1, deform_groups * 9, out_h, out_w, generator=generator).double()
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    expected = dcn_by_definition(
        x, offset, weight, stride, padding, dilation, groups, deform_groups,
        mask if modulated else None, bias if modulated else None,
    )  # fmt: skip
    on = [t.to(DEVICE) for t in (x, offset, mask, weight, bias)]
    if modulated:
        out = modulated_deform_conv2d(
            on[0], on[1], on[2], on[3], on[4], stride, padding, dilation, groups, deform_groups
        )
    else:
        out = deform_conv2d(on[0], on[1], on[3], stride, padding, dilation, groups, deform_groups)
    assert torch.allclose(out.cpu(), expected, atol=1e-10)


def test_the_offset_gradient_is_the_slope_of_the_ramp():
    """d out / d dy is the ramp's slope along y (10) and d out / d dx along x (1): a
    backward that swapped them, or used another tap's channels, gives other numbers."""
    from mmcv.ops import deform_conv2d

    image = ramp(6, 7, **F64).view(1, 1, 6, 7)
    offset = torch.zeros(1, 18, 6, 7, **F64)
    offset[:, 0::2], offset[:, 1::2] = 0.3, 0.6
    offset.requires_grad_(True)
    weight = torch.zeros(1, 1, 3, 3, **F64)
    weight[0, 0, 0, 2] = 1.0  # only tap k = 2 (row 0, column 2) counts
    deform_conv2d(image, offset, weight, 1, 1, 1, 1, 1)[0, 0, 3, 3].backward()
    grad = offset.grad[0, :, 3, 3]
    assert grad[4].item() == pytest.approx(10.0, abs=1e-9)  # dy of tap 2
    assert grad[5].item() == pytest.approx(1.0, abs=1e-9)  # dx of tap 2
    assert torch.count_nonzero(grad).item() == 2


@pytest.mark.parametrize("modulated", [False, True])
def test_deformable_convolution_gradients_by_gradcheck(modulated):
    from mmcv.ops import deform_conv2d, modulated_deform_conv2d

    generator = torch.Generator().manual_seed(1)

    def leaf(*shape, scale=1.0, shift=0.0):
        value = scale * torch.rand(*shape, generator=generator, dtype=torch.float64) + shift
        return value.to(DEVICE).requires_grad_(True)

    x, weight = leaf(1, 2, 4, 5), leaf(2, 2, 3, 3)
    offset = leaf(1, 18, 4, 5, scale=3.0, shift=-1.5)  # fractional: no kinks near
    if modulated:
        mask, bias = leaf(1, 9, 4, 5), leaf(2)

        def function(x, offset, mask, weight, bias):
            return modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 1, 1)

        inputs = (x, offset, mask, weight, bias)
    else:

        def function(x, offset, weight):
            return deform_conv2d(x, offset, weight, 1, 1, 1, 1, 1)

        inputs = (x, offset, weight)
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5)


# ---- RoIAlign ----------------------------------------------------------------------------


def roi_sample(feature: torch.Tensor, y: float, x: float) -> float:
    """The value RoIAlign reads at (y, x): zero beyond one pixel outside, clamped to
    the map within it (mmcv's and torchvision's rule)."""
    height, width = feature.shape
    if y < -1 or y > height or x < -1 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return float(
        (1 - ly) * (1 - lx) * feature[y0, x0] + (1 - ly) * lx * feature[y0, x1]
        + ly * (1 - lx) * feature[y1, x0] + ly * lx * feature[y1, x1]
    )  # fmt: skip


def roi_align_by_definition(feature, box, size, scale, sampling_ratio, aligned):
    """Average RoIAlign of one box (x1, y1, x2, y2) from its definition: each of the
    size x size bins is the mean of a grid of samples at the centres of its sub-cells
    (sampling_ratio per side, or ceil(bin size) when 0); `aligned` moves the box by
    half a pixel so that pixel centres sit at integer + 0.5, and otherwise a box is at
    least 1 px."""
    shift = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - shift for v in box)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_w, bin_h = roi_w / size, roi_h / size
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / size)
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / size)
    out = torch.zeros(size, size, dtype=torch.float64)
    for ph in range(size):
        for pw in range(size):
            total = 0.0
            for iy in range(grid_h):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    total += roi_sample(feature, y, x)
            out[ph, pw] = total / max(grid_h * grid_w, 1)
    return out


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 0])
def test_roi_align_of_a_ramp_is_the_ramp_at_each_bin_centre(aligned, sampling_ratio):
    """F = 3x + 7y + 1 is linear, so a bin's mean is F at the bin's centre, in the map's
    index space: x1 - 0.5 + (pw + 0.5) * bin_w with `aligned`, x1 + ... without. A
    missing or doubled half-pixel shift moves every value by 5."""
    from mmcv.ops import roi_align

    feature = ramp(16, 16, dy=7.0, dx=3.0, **F64) + 1
    box = (2.25, 3.5, 10.75, 9.0)
    rois = torch.tensor([[0.0, *box]], **F64)
    out = roi_align(feature.view(1, 1, 16, 16), rois, (4, 4), 1.0, sampling_ratio, "avg", aligned)
    shift = 0.5 if aligned else 0.0
    bin_w, bin_h = (box[2] - box[0]) / 4, (box[3] - box[1]) / 4
    for ph in range(4):
        for pw in range(4):
            cx = box[0] - shift + (pw + 0.5) * bin_w
            cy = box[1] - shift + (ph + 0.5) * bin_h
            assert out[0, 0, ph, pw].item() == pytest.approx(3 * cx + 7 * cy + 1, abs=1e-9)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3, 0])
def test_roi_align_by_its_definition(aligned, sampling_ratio):
    """A random map, boxes inside, across the border, tiny, and at another scale."""
    from mmcv.ops import roi_align

    generator = torch.Generator().manual_seed(2)
    feature = torch.rand(2, 3, 9, 11, generator=generator, dtype=torch.float64)
    boxes = [(0, (1.3, 0.7, 7.9, 6.2)), (1, (-2.0, 3.0, 12.5, 10.0)), (0, (4.1, 4.2, 4.6, 4.4)),
             (1, (2.0, 1.0, 20.0, 14.0))]  # fmt: skip
    scale = 0.5
    rois = torch.tensor([[n, *box] for n, box in boxes], **F64)
    out = roi_align(feature.to(DEVICE), rois, (3, 3), scale, sampling_ratio, "avg", aligned)
    for index, (n, box) in enumerate(boxes):
        for c in range(3):
            expected = roi_align_by_definition(
                feature[n, c], box, 3, scale, sampling_ratio, aligned
            )
            assert torch.allclose(out[index, c].cpu(), expected, atol=1e-10), (index, c)


def test_roi_align_gradient_by_gradcheck():
    from mmcv.ops import roi_align

    feature = torch.rand(1, 2, 6, 7, **F64).requires_grad_(True)
    rois = torch.tensor([[0, 0.6, 1.1, 5.3, 4.9], [0, 2.2, 0.3, 6.1, 5.2]], **F64)

    def function(feature):
        return roi_align(feature, rois, (2, 3), 1.0, 2, "avg", True)

    assert torch.autograd.gradcheck(function, (feature,), eps=1e-6, atol=1e-6)


# ---- NMS ---------------------------------------------------------------------------------


def test_nms_keeps_the_best_and_what_overlaps_it_too_little():
    from mmcv.ops import nms

    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]], device=DEVICE
    )
    scores = torch.tensor([0.5, 0.9, 0.7, 0.5], device=DEVICE)
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [1, 2]  # box 1 (IoU 0.82 with 0 and 3) and the far box, best first
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7], device=DEVICE))
    # a tie: of two identical boxes with the same score exactly one is kept
    _, tie = nms(boxes[[0, 3]], scores[[0, 3]], iou_threshold=0.5)
    assert len(tie) == 1


def test_nms_offset_is_the_legacy_pixel_convention():
    """[0, 0, 9, 9] and [5, 0, 14, 9]: IoU 36/126 = 0.286 with offset 0 (widths 9),
    50/150 = 0.333 with offset 1 (widths x2 - x1 + 1 = 10). At 0.3 only offset 1
    suppresses."""
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9.0]], device=DEVICE)
    scores = torch.tensor([0.9, 0.8], device=DEVICE)
    assert nms(boxes, scores, 0.3, offset=0)[1].tolist() == [0, 1]
    assert nms(boxes, scores, 0.3, offset=1)[1].tolist() == [0]


# ---- sigmoid focal loss ------------------------------------------------------------------


def focal_by_formula(logits, target, gamma, alpha, weight=None):
    """FL = -alpha (1 - p)^gamma log p for the target class, -(1 - alpha) p^gamma
    log(1 - p) for the others; target == classes is background (all negatives)."""
    p = torch.sigmoid(logits)
    positive = torch.nn.functional.one_hot(target, logits.size(1) + 1)[:, :-1].to(logits.dtype)
    loss = -positive * alpha * (1 - p) ** gamma * torch.log(p)
    loss = loss - (1 - positive) * (1 - alpha) * p**gamma * torch.log(1 - p)
    if weight is not None:
        loss = loss * weight[target].view(-1, 1)
    return loss


@needs_focal_kernel
@pytest.mark.parametrize("weighted", [False, True])
def test_sigmoid_focal_loss_is_its_formula(weighted):
    from mmcv.ops import sigmoid_focal_loss

    generator = torch.Generator().manual_seed(3)
    logits = (4 * torch.randn(7, 6, generator=generator, dtype=torch.float64)).to(DEVICE)
    # 6 = background; per-class weights index by the target (mmcv reads past the end
    # of the weights for background, so mmdet never passes them: weighted, no background)
    targets = [0, 5, 2, 1, 1, 3, 4] if weighted else [0, 5, 2, 6, 6, 1, 3]
    target = torch.tensor(targets, device=DEVICE)
    weight = torch.rand(6, generator=generator, dtype=torch.float64).to(DEVICE)
    weight = weight if weighted else None
    out = sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, "none")
    expected = focal_by_formula(logits, target, 2.0, 0.25, weight)
    assert torch.allclose(out, expected, atol=1e-12)
    leaf = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: sigmoid_focal_loss(z, target, 2.0, 0.25, weight, "sum"), (leaf,), eps=1e-6
    )


@needs_focal_kernel
def test_mmdets_cuda_focal_loss_equals_its_python_one():
    """mmdet's FocalLoss takes mmcv's kernel only on CUDA and its own torch formula
    elsewhere: both must give the same loss and gradient (here on this device)."""
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss, sigmoid_focal_loss

    generator = torch.Generator().manual_seed(4)
    logits = (3 * torch.randn(9, 6, generator=generator, dtype=torch.float64)).to(DEVICE)
    target = torch.tensor([0, 1, 2, 3, 4, 5, 6, 6, 2], device=DEVICE)
    one_hot = torch.nn.functional.one_hot(target, 7)[:, :6].to(logits.dtype)
    grads = []
    for function, labels in ((sigmoid_focal_loss, target), (py_sigmoid_focal_loss, one_hot)):
        leaf = logits.clone().requires_grad_(True)
        loss = function(leaf, labels, gamma=2.0, alpha=0.5, reduction="mean", avg_factor=5.0)
        loss.backward()
        grads.append((loss.detach(), leaf.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-10)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-10)
