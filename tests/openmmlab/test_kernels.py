"""cardd's torchvision kernels (`CARDD_OPS=torchvision`, the default install), through
mmcv's own op classes.

Always: against references that need no compiled code (a deformable convolution
with zero offsets is a plain convolution; torchvision's focal loss; NMS by hand)
and gradcheck (float64) against finite differences. Where mmcv's compiled kernels
are installed (`CARDD_OPS=compiled`): each op run with them and with
`cardd.openmmlab.kernels` swapped into the op's module, outputs and gradients
compared, and a trained model's detections compared end to end.
"""

import pytest
import torch
import torchvision

from cardd.openmmlab import kernels as torchvision_ops
from tests.conftest import requires_compiled


def _module(name: str):
    """An mmcv.ops submodule (`mmcv.ops.roi_align` the attribute is the function)."""
    import importlib

    return importlib.import_module(name)


def _both(monkeypatch, module, run):
    """`run()` with the compiled kernels, then with cardd's, in `module`."""
    compiled = run()
    monkeypatch.setattr(module, "ext_module", torchvision_ops)
    ours = run()
    return compiled, ours


def _forward_backward(function, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    output = function(*leaves)
    grad_output = torch.linspace(-1, 1, output.numel()).view_as(output).to(output.dtype)
    output.backward(grad_output)
    return [output.detach()] + [leaf.grad for leaf in leaves]


@requires_compiled
@pytest.mark.parametrize(
    ("batch", "groups", "deform_groups", "stride", "im2col_step"),
    [(2, 1, 1, 1, 64), (4, 2, 2, 2, 2)],  # the second: im2col batching, groups
)
def test_deform_conv_matches_compiled(
    monkeypatch, batch, groups, deform_groups, stride, im2col_step
):
    from mmcv.ops import deform_conv
    from mmcv.ops.deform_conv import deform_conv2d

    torch.manual_seed(0)
    x = torch.randn(batch, 8, 11, 13)
    out_h, out_w = (11 + 2 - 3) // stride + 1, (13 + 2 - 3) // stride + 1
    offset = torch.randn(batch, 2 * deform_groups * 9, out_h, out_w) * 2
    weight = torch.randn(6, 8 // groups, 3, 3)

    def run():
        return _forward_backward(
            lambda a, o, w: deform_conv2d(
                a, o, w, stride, 1, 1, groups, deform_groups, False, im2col_step
            ),
            x, offset, weight,
        )  # fmt: skip

    compiled, ours = _both(monkeypatch, deform_conv, run)
    for name, a, b in zip(("output", "input", "offset", "weight"), compiled, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=name)


@requires_compiled
def test_modulated_deform_conv_matches_compiled(monkeypatch):
    from mmcv.ops import modulated_deform_conv
    from mmcv.ops.modulated_deform_conv import modulated_deform_conv2d

    torch.manual_seed(1)
    x, offset = torch.randn(2, 4, 9, 9), torch.randn(2, 18, 9, 9)
    mask, weight, bias = torch.rand(2, 9, 9, 9), torch.randn(5, 4, 3, 3), torch.randn(5)

    def run():
        return _forward_backward(
            lambda a, o, m, w, b: modulated_deform_conv2d(a, o, m, w, b, 1, 1, 1, 1, 1),
            x, offset, mask, weight, bias,
        )  # fmt: skip

    compiled, ours = _both(monkeypatch, modulated_deform_conv, run)
    for a, b in zip(compiled, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@requires_compiled
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_matches_compiled(monkeypatch, aligned, sampling_ratio):
    from mmcv.ops.roi_align import roi_align

    roi_align_module = _module("mmcv.ops.roi_align")

    torch.manual_seed(2)
    features = torch.randn(2, 3, 20, 24)
    rois = torch.tensor(
        [[0, 1.0, 2.0, 15.5, 12.0], [1, 0.0, 0.0, 23.0, 19.0], [1, 5.3, 4.1, 6.2, 9.9]]
    )

    def run():
        return _forward_backward(
            lambda f: roi_align(f, rois, (7, 7), 0.5, sampling_ratio, "avg", aligned), features
        )

    compiled, ours = _both(monkeypatch, roi_align_module, run)
    for a, b in zip(compiled, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_roi_align_with_no_rois(monkeypatch):
    from mmcv.ops.roi_align import roi_align

    roi_align_module = _module("mmcv.ops.roi_align")

    monkeypatch.setattr(roi_align_module, "ext_module", torchvision_ops)
    features = torch.randn(1, 3, 8, 8, requires_grad=True)
    pooled = roi_align(features, torch.zeros(0, 5), (7, 7), 1.0, 0, "avg", True)
    assert pooled.shape == (0, 3, 7, 7)
    pooled.sum().backward()
    assert features.grad.abs().sum() == 0


@requires_compiled
@pytest.mark.parametrize("offset", [0, 1])
def test_nms_matches_compiled(monkeypatch, offset):
    from mmcv.ops.nms import nms

    nms_module = _module("mmcv.ops.nms")

    torch.manual_seed(3)
    xy = torch.rand(200, 2) * 100
    boxes = torch.cat([xy, xy + torch.rand(200, 2) * 30 + 1], dim=1)
    scores = torch.rand(200)

    def run():
        return nms(boxes, scores, 0.5, offset=offset)

    (compiled_dets, compiled_keep), (dets, keep) = _both(monkeypatch, nms_module, run)
    assert keep.tolist() == compiled_keep.tolist()
    torch.testing.assert_close(dets, compiled_dets)


def test_sigmoid_focal_loss_is_torchvisions_formula(monkeypatch):
    from mmcv.ops import focal_loss
    from mmcv.ops.focal_loss import sigmoid_focal_loss

    monkeypatch.setattr(focal_loss, "ext_module", torchvision_ops)
    torch.manual_seed(4)
    logits = torch.randn(12, 6, dtype=torch.float64)
    target = torch.randint(0, 7, (12,))  # 6: background
    ours = _forward_backward(
        lambda x: sigmoid_focal_loss(x, target, 2.0, 0.25, None, "sum"), logits
    )
    one_hot = torch.nn.functional.one_hot(target, 7)[:, :6].to(torch.float64)
    reference = _forward_backward(
        lambda x: torchvision.ops.sigmoid_focal_loss(x, one_hot, 0.25, 2.0, "sum"), logits
    )
    for a, b in zip(reference, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-10)


def test_gradcheck_in_float64(monkeypatch):
    from mmcv.ops import deform_conv, focal_loss
    from mmcv.ops.deform_conv import deform_conv2d
    from mmcv.ops.focal_loss import sigmoid_focal_loss
    from mmcv.ops.roi_align import roi_align

    for module in (deform_conv, focal_loss, _module("mmcv.ops.roi_align")):
        monkeypatch.setattr(module, "ext_module", torchvision_ops)
    torch.manual_seed(5)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    offset = (torch.randn(1, 18, 5, 5, dtype=torch.float64) * 0.7).requires_grad_()
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, o, w: deform_conv2d(a, o, w, 1, 1, 1, 1, 1, False, 1), (x, offset, weight)
    )
    rois = torch.tensor([[0, 0.5, 0.7, 3.6, 4.1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, (2, 2), 1.0, 2, "avg", True), (x,))
    logits = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, 6, 5])
    assert torch.autograd.gradcheck(
        lambda z: sigmoid_focal_loss(z, target, 2.0, 0.25, None, "mean"), (logits,)
    )


def test_exactly_the_kernels_mmcv_asks_for_exist():
    """mmcv's ops modules check at import that `mmcv._ext` has each kernel they name;
    any other name must be an AttributeError, not an invented stand-in."""
    import ast
    from pathlib import Path

    import mmcv

    asked = set()
    for source in Path(mmcv.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load_ext":
                asked.update(element.value for element in node.args[1].elts)
    assert asked == torchvision_ops.MMCV_KERNELS
    assert set(torchvision_ops.IMPLEMENTED) <= asked
    with pytest.raises(AttributeError, match="no attribute 'no_such_kernel'"):
        torchvision_ops.no_such_kernel  # noqa: B018
    assert not hasattr(torchvision_ops, "nms_typo")


def test_every_other_op_says_what_is_missing():
    import mmcv.ops  # noqa: F401  (every name mmcv asks for must exist)

    assert hasattr(torchvision_ops, "ms_deform_attn_forward")
    with pytest.raises(torchvision_ops.UnsupportedOp, match="'ms_deform_attn_forward'.*compiled"):
        torchvision_ops.ms_deform_attn_forward(None)
    with pytest.raises(torchvision_ops.UnsupportedOp, match="max pooling"):
        torchvision_ops.roi_align_forward(
            None, None, None, None, None, aligned_height=7, aligned_width=7, spatial_scale=1.0,
            sampling_ratio=0, pool_mode=0, aligned=True,
        )  # fmt: skip


def _kernels(monkeypatch, *names):
    """Point these mmcv.ops modules at cardd's kernels (whatever is installed)."""
    for name in names:
        monkeypatch.setattr(_module(name), "ext_module", torchvision_ops)


def test_deform_conv_with_zero_offsets_is_a_plain_convolution(monkeypatch):
    from mmcv.ops.deform_conv import deform_conv2d
    from mmcv.ops.modulated_deform_conv import modulated_deform_conv2d

    _kernels(monkeypatch, "mmcv.ops.deform_conv", "mmcv.ops.modulated_deform_conv")
    torch.manual_seed(6)
    x, weight, bias = torch.randn(4, 6, 9, 11), torch.randn(8, 3, 3, 3), torch.randn(8)
    zeros = torch.zeros(4, 2 * 9, 5, 6)
    ours = _forward_backward(
        lambda a, w: deform_conv2d(a, zeros, w, 2, 1, 1, 2, 1, False, 2), x, weight
    )
    plain = _forward_backward(
        lambda a, w: torch.nn.functional.conv2d(a, w, stride=2, padding=1, groups=2), x, weight
    )
    for a, b in zip(plain, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    ones = torch.ones(4, 9, 5, 6)
    modulated = modulated_deform_conv2d(x, zeros, ones, weight, bias, 2, 1, 1, 2, 1)
    expected = torch.nn.functional.conv2d(x, weight, bias, stride=2, padding=1, groups=2)
    torch.testing.assert_close(modulated, expected, rtol=1e-4, atol=1e-4)


def test_roi_align_of_a_constant_map_is_that_constant(monkeypatch):
    from mmcv.ops.roi_align import roi_align

    _kernels(monkeypatch, "mmcv.ops.roi_align")
    features = torch.full((1, 2, 16, 16), 3.5)
    rois = torch.tensor([[0, 2.0, 3.0, 9.0, 12.0], [0, 0.5, 0.5, 4.0, 4.0]])
    pooled = roi_align(features, rois, (7, 7), 1.0, 2, "avg", True)
    torch.testing.assert_close(pooled, torch.full((2, 2, 7, 7), 3.5))


def test_nms_keeps_what_a_hand_written_nms_keeps(monkeypatch):
    from mmcv.ops.nms import nms

    _kernels(monkeypatch, "mmcv.ops.nms")
    torch.manual_seed(7)
    xy = torch.rand(60, 2) * 50
    boxes = torch.cat([xy, xy + torch.rand(60, 2) * 20 + 1], dim=1)
    scores = torch.rand(60)
    _, keep = nms(boxes, scores, 0.4)
    order, expected = scores.argsort(descending=True).tolist(), []
    for i in order:
        ious = torchvision.ops.box_iou(boxes[i : i + 1], boxes[expected]) if expected else None
        if ious is None or (ious <= 0.4).all():
            expected.append(i)
    assert keep.tolist() == expected


@requires_compiled
@pytest.mark.slow
def test_a_trained_model_detects_the_same_with_either_kernels(
    monkeypatch, tiny_checkpoint, synthetic_root
):
    from cardd import DamageDetector

    detector = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=0.05)
    photo = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    compiled = detector.predict(photo)
    _kernels(monkeypatch, "mmcv.ops.deform_conv", "mmcv.ops.roi_align", "mmcv.ops.nms")
    ours = detector.predict(photo)
    assert [d.label for d in ours] == [d.label for d in compiled]
    assert [d.score for d in ours] == pytest.approx([d.score for d in compiled], abs=1e-4)


def test_weight_gradient_alone(monkeypatch):
    """Only the weight needs a gradient: mmcv skips backward_input, and
    backward_parameters computes the gradient itself."""
    from mmcv.ops.deform_conv import deform_conv2d

    _kernels(monkeypatch, "mmcv.ops.deform_conv")
    torch.manual_seed(8)
    x, weight = torch.randn(2, 4, 7, 7), torch.randn(5, 4, 3, 3, requires_grad=True)
    zeros = torch.zeros(2, 18, 7, 7)
    deform_conv2d(x, zeros, weight, 1, 1, 1, 1, 1, False, 2).sum().backward()
    plain = weight.detach().clone().requires_grad_(True)
    torch.nn.functional.conv2d(x, plain, padding=1).sum().backward()
    torch.testing.assert_close(weight.grad, plain.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("groups", "deform_groups", "stride", "padding", "dilation", "modulated"),
    [
        (1, 1, 1, 1, 1, False),
        (2, 2, 2, 1, 1, True),
        (1, 2, 1, 2, 2, True),
        (2, 1, (2, 1), 0, 1, False),
    ],
)
def test_cpu_deform_conv_is_torchvisions_operation(
    groups, deform_groups, stride, padding, dilation, modulated
):
    """On the CPU cardd samples bilinearly instead of running torchvision's kernel:
    the same outputs and gradients (input, offsets, weight, mask, bias), samples that
    fall off the image included, in float64 to the last digits."""
    torch.manual_seed(9)
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    weight = torch.randn(6, 4 // groups, 3, 3, dtype=torch.float64)
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    out_h = (9 + 2 * padding - dilation * 2 - 1) // stride[0] + 1
    out_w = (10 + 2 * padding - dilation * 2 - 1) // stride[1] + 1
    offset = torch.randn(2, 2 * deform_groups * 9, out_h, out_w, dtype=torch.float64) * 3
    mask = torch.rand(2, deform_groups * 9, out_h, out_w, dtype=torch.float64)
    bias = torch.randn(6, dtype=torch.float64)
    tensors = [x, offset, weight] + ([mask, bias] if modulated else [])

    def run(implementation):
        def convolve(a, o, w, m=None, b=None):
            return implementation(
                a, o, w, bias=b, stride=stride, padding=(padding, padding),
                dilation=(dilation, dilation), mask=m,
            )  # fmt: skip

        return _forward_backward(convolve, *tensors)

    expected = run(torchvision_ops.torchvision_deform_conv)
    ours = run(torchvision_ops.sampled_deform_conv)
    assert (offset.abs() > 3).any()  # some taps sample outside the image
    for a, b in zip(expected, ours, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


def test_cpu_deform_conv_in_half_precision_samples_at_float32_positions():
    torch.manual_seed(10)
    x = torch.randn(1, 4, 40, 1200)
    offset = torch.rand(1, 18, 40, 1200) * 0.9
    weight = torch.randn(5, 4, 3, 3)
    full = torchvision_ops.sampled_deform_conv(x, offset, weight, (1, 1), (1, 1), (1, 1))
    half = torchvision_ops.sampled_deform_conv(
        x.half(), offset.half(), weight.half(), (1, 1), (1, 1), (1, 1)
    )
    assert half.dtype == torch.float16
    # float16 positions near x=1000 would be off by up to 0.25 px: errors of whole units
    torch.testing.assert_close(half.float(), full, rtol=0.02, atol=0.05)


def test_cpu_deform_conv_runs_a_large_batch_a_few_images_at_a_time(monkeypatch):
    torch.manual_seed(11)
    x = torch.randn(5, 4, 12, 12, dtype=torch.float64)
    offset = torch.randn(5, 18, 12, 12, dtype=torch.float64)
    mask = torch.rand(5, 9, 12, 12, dtype=torch.float64)
    weight, bias = torch.randn(3, 4, 3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)

    def run():
        return _forward_backward(
            lambda a, o, m, w, b: torchvision_ops.sampled_deform_conv(
                a, o, w, (1, 1), (1, 1), (1, 1), mask=m, bias=b
            ),
            x, offset, mask, weight, bias,
        )  # fmt: skip

    whole = run()
    calls = []
    grid_sample = torch.nn.functional.grid_sample
    monkeypatch.setattr(
        torch.nn.functional,
        "grid_sample",
        lambda t, *a, **k: calls.append(len(t)) or grid_sample(t, *a, **k),
    )
    monkeypatch.setattr(torchvision_ops, "COLUMN_BYTES", 2 * 4 * 9 * 12 * 12 * 8)  # 2 images
    chunked = run()
    assert calls == [2, 2, 1]
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


# ---- AMP: the backward differentiates the forward that ran ---------------------------------

KERNELS = {
    "sampled (CPU)": torchvision_ops.sampled_deform_conv,
    "torchvision (GPU)": torchvision_ops.torchvision_deform_conv,
}


def _cardds_dcn_kernels(monkeypatch) -> None:
    """mmcv's DCN ops on cardd's kernels, whichever kernels are installed."""
    for name in ("mmcv.ops.deform_conv", "mmcv.ops.modulated_deform_conv"):
        monkeypatch.setattr(_module(name), "ext_module", torchvision_ops)


def _position_case(dtype):
    """A ramp I(x) = x - 400 on a 600-px-wide map, and a 1x1 DCN tap at x = 400 moved
    by dx = 0.1. Positions in float16 round to 0.25 px there (400.1 -> 400.0): the
    forward would read 0.0 instead of 0.1, the backward give the input weights
    (1.0, 0.0) instead of (0.9, 0.1)."""
    image = (torch.arange(600, dtype=torch.float32) - 400).view(1, 1, 1, 600)
    offset = torch.zeros(1, 2, 1, 600)
    offset[:, 1] = 0.1
    weight = torch.ones(1, 1, 1, 1)
    return [t.to(dtype).requires_grad_(True) for t in (image, offset, weight)]


@pytest.mark.parametrize("keep_graph", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float16_under_autocast_is_sampled_and_differentiated_in_float32(
    kernel, keep_graph, monkeypatch
):
    """What mmcv hands DCN under AMP (float16 input, offsets and weight, autocast on):
    the forward and the backward both run the float32 function, whether the backward
    uses the forward's graph or runs it again, on either kernel."""
    from mmcv.ops import deform_conv2d

    _cardds_dcn_kernels(monkeypatch)
    monkeypatch.setattr(torchvision_ops, "_deform_kernel", lambda device: KERNELS[kernel])
    if not keep_graph:
        monkeypatch.setattr(torchvision_ops, "KEEP_GRAPH_BYTES", -1)
    image, offset, weight = _position_case(torch.float16)
    with torch.autocast("cpu", dtype=torch.float16):
        out = deform_conv2d(image, offset, weight, 1, 0, 1, 1, 1)
    assert out.dtype == torch.float16
    assert out[0, 0, 0, 400].item() == pytest.approx(0.1, abs=1e-4)
    out[0, 0, 0, 400].backward()
    assert image.grad[0, 0, 0, 400].item() == pytest.approx(0.9, abs=1e-3)
    assert image.grad[0, 0, 0, 401].item() == pytest.approx(0.1, abs=1e-3)
    assert offset.grad[0, 1, 0, 400].item() == pytest.approx(1.0, abs=1e-3)  # the slope


def _counting(monkeypatch, kernel):
    calls = []

    def counted(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return kernel(*args, **kwargs)

    monkeypatch.setattr(torchvision_ops, "_deform_kernel", lambda device: counted)
    return calls


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("modulated", [False, True])
def test_the_backward_uses_the_forwards_graph_and_gets_the_same_gradients(
    kernel, modulated, monkeypatch
):
    """One forward per training step, not two; the same gradients as running it again;
    and no graph at all under no_grad (a weight requires grad there too)."""
    from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack

    torch.manual_seed(0)
    layer_type = ModulatedDeformConv2dPack if modulated else DeformConv2dPack
    layer = layer_type(4, 4, 3, padding=1).double()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)  # offsets that move the taps
    x = torch.rand(2, 4, 6, 7, dtype=torch.float64)

    def step():
        layer.zero_grad()
        leaf = x.clone().requires_grad_(True)
        layer(leaf).pow(2).sum().backward()
        return [leaf.grad, layer.weight.grad, layer.conv_offset.weight.grad]

    _cardds_dcn_kernels(monkeypatch)
    calls = _counting(monkeypatch, KERNELS[kernel])
    kept = step()
    assert len(calls) == 1  # the backward ran no second forward
    monkeypatch.setattr(torchvision_ops, "KEEP_GRAPH_BYTES", -1)  # on the CPU: too large
    again = step()
    assert len(calls) == 3  # not kept: run again in the backward
    for a, b in zip(kept, again, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    calls.clear()
    with torch.no_grad():
        layer(x)
    assert calls == [False]  # no graph built for inference


@pytest.mark.parametrize(
    ("groups", "offset_groups", "stride", "dilation", "masked", "biased"),
    [(1, 1, 1, 1, False, False), (2, 2, 2, 1, True, True), (1, 3, 1, 2, True, False)],
)
def test_the_kernels_called_directly_equal_torchvisions_functions(
    groups, offset_groups, stride, dilation, masked, biased
):
    """cardd calls torchvision's registered kernels without importing the package (1 s of
    start-up); what its Python wrappers do before the kernel is done alike."""
    import torchvision

    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 6 // groups, 3, 3, dtype=torch.float64, requires_grad=True)
    out_h = (9 + 2 - dilation * 2 - 1) // stride + 1
    out_w = (11 + 2 - dilation * 2 - 1) // stride + 1
    offset = torch.randn(2, 2 * offset_groups * 9, out_h, out_w, dtype=torch.float64)
    mask = torch.rand(2, offset_groups * 9, out_h, out_w, dtype=torch.float64) if masked else None
    bias = torch.randn(4, dtype=torch.float64) if biased else None
    ours = torchvision_ops.torchvision_deform_conv(
        x, offset, weight, stride, 1, dilation, mask=mask, bias=bias
    )
    theirs = torchvision.ops.deform_conv2d(
        x, offset, weight, bias=bias, stride=stride, padding=1, dilation=dilation, mask=mask
    )
    torch.testing.assert_close(ours, theirs)
    grads = torch.autograd.grad(ours.square().sum(), (x, weight))
    expected = torch.autograd.grad(theirs.square().sum(), (x, weight))
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b)

    features = torch.randn(2, 3, 16, 16)
    rois = torch.tensor([[0, 1.0, 2.0, 9.5, 12.0], [1, 0.0, 0.0, 15.0, 15.0]])
    for aligned in (False, True):
        torch.testing.assert_close(
            torchvision_ops._roi_align(features, rois, 7, 5, 0.5, 2, aligned),
            torchvision.ops.roi_align(features, rois, (7, 5), 0.5, 2, aligned),
        )
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torchvision_ops.nms(boxes, scores, iou_threshold=0.5, offset=0).tolist() == [0, 2]


def test_a_model_runs_without_importing_the_torchvision_package(tiny_export):
    """Float32 inference loads only torchvision's kernel library; autocast and gradients,
    whose rules this torchvision registers in Python, get the package (a fresh process:
    nothing imported torchvision before)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, torch\n"
        "from cardd import DamageDetector\n"
        "from cardd.openmmlab import kernels as torchvision_ops\n"
        f"d = DamageDetector(checkpoint={str(tiny_export)!r}, device='cpu', score_thr=0)\n"
        "photo = np.full((200, 240, 3), 90, dtype=np.uint8)\n"
        "d.predict(photo)\n"
        "print('torchvision' in sys.modules)\n"
        "d.half = True\n"
        "assert d.predict(photo)  # autocast: nms of float16 boxes needs torchvision's rules\n"
        "x = torch.randn(1, 2, 6, 6, requires_grad=True)\n"
        "w = torch.randn(3, 2, 3, 3, requires_grad=True)\n"
        "y = torchvision_ops.torchvision_deform_conv(x, torch.zeros(1, 18, 4, 4), w, 1, 0, 1)\n"
        "gx, gw = torch.autograd.grad(y.sum(), (x, w))\n"
        "reference = torch.nn.functional.conv2d(x, w)\n"
        "rx, rw = torch.autograd.grad(reference.sum(), (x, w))\n"
        "torch.testing.assert_close((gx, gw), (rx, rw))  # zero offsets: a plain convolution\n"
        "print('torchvision' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-2:] == ["False", "True"]
