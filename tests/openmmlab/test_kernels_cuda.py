"""cardd's default kernels on a CUDA GPU: what the first GPU run of `cardd train` meets.

Runs by itself wherever PyTorch sees a GPU (skipped with the reason otherwise; the
convention tests in `test_kernel_reference.py` and `test_kernel_golden.py` run on the
GPU too with `CARDD_TEST_DEVICE=cuda`). Every kernel forward and backward in float32
against the same op on the CPU in float64, and under autocast (float16); a few
training iterations of `tiny_DCN_plus` with and without `--amp`; inference with
`--half`. `scripts/gpu/gpu_first_run.sh` runs this module first.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")

CUDA = torch.device("cuda")


def _forward_backward(function, tensors, device, dtype, autocast=False):
    leaves = [t.detach().to(device=device, dtype=dtype).requires_grad_(True) for t in tensors]
    with torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
        output = function(*leaves)
    grad = torch.linspace(-1, 1, output.numel(), dtype=torch.float64).view_as(output)
    output.backward(grad.to(device=device, dtype=output.dtype))
    return [output.detach().double().cpu()] + [leaf.grad.double().cpu() for leaf in leaves]


def _inputs(modulated: bool):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 8, 12, 14, generator=generator, dtype=torch.float64)
    offset = 4 * torch.rand(2, 18, 12, 14, generator=generator, dtype=torch.float64) - 2
    weight = torch.randn(8, 8, 3, 3, generator=generator, dtype=torch.float64) / 8
    mask = torch.rand(2, 9, 12, 14, generator=generator, dtype=torch.float64)
    bias = torch.randn(8, generator=generator, dtype=torch.float64)
    return (x, offset, mask, weight, bias) if modulated else (x, offset, weight)


def _dcn(modulated: bool):
    from mmcv.ops import deform_conv2d, modulated_deform_conv2d

    if modulated:
        return lambda x, o, m, w, b: modulated_deform_conv2d(x, o, m, w, b, 1, 1, 1, 1, 1)
    return lambda x, o, w: deform_conv2d(x, o, w, 1, 1, 1, 1, 1)


@pytest.mark.parametrize("modulated", [False, True])
def test_dcn_on_the_gpu_equals_the_cpu(modulated):
    function, tensors = _dcn(modulated), _inputs(modulated)
    cpu = _forward_backward(function, tensors, "cpu", torch.float64)
    gpu = _forward_backward(function, tensors, CUDA, torch.float32)
    for a, b in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("modulated", [False, True])
def test_dcn_under_autocast_is_the_float32_function_of_its_float16_inputs(modulated):
    """Under AMP mmcv hands DCN float16 tensors; forward and backward must both be the
    float32 function of those values (the output then rounded to float16)."""
    function, tensors = _dcn(modulated), _inputs(modulated)
    rounded = [t.half().double() for t in tensors]
    reference = _forward_backward(function, rounded, "cpu", torch.float64)
    amp = _forward_backward(function, [t.half() for t in tensors], CUDA, torch.float16, True)
    for a, b in zip(amp, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)


def test_roi_align_nms_and_focal_loss_on_the_gpu_equal_the_cpu():
    from mmcv.ops import nms, roi_align, sigmoid_focal_loss

    generator = torch.Generator().manual_seed(1)
    feature = torch.rand(2, 4, 20, 24, generator=generator, dtype=torch.float64)
    rois = torch.tensor([[0, 1.5, 2.0, 17.0, 13.5], [1, -3.0, 4.0, 30.0, 19.0]])

    def pool(f):
        return roi_align(f, rois.to(f), (7, 7), 0.5, 0, "avg", True)

    for autocast in (False, True):
        cpu = _forward_backward(pool, [feature], "cpu", torch.float64)
        gpu = _forward_backward(pool, [feature], CUDA, torch.float32, autocast)
        for a, b in zip(gpu, cpu, strict=True):
            torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)
    boxes = torch.rand(200, 2, generator=generator) * 100
    boxes = torch.cat([boxes, boxes + 5 + 20 * torch.rand(200, 2, generator=generator)], 1)
    scores = torch.rand(200, generator=generator)
    for offset in (0, 1):
        keep_cpu = nms(boxes, scores, 0.5, offset=offset)[1]
        keep_gpu = nms(boxes.to(CUDA), scores.to(CUDA), 0.5, offset=offset)[1]
        assert keep_gpu.cpu().tolist() == keep_cpu.tolist()
    logits = 4 * torch.randn(64, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 7, (64,), generator=generator)

    def focal(z):
        return sigmoid_focal_loss(z, target.to(z.device), 2.0, 0.25, None, "none")

    cpu = _forward_backward(focal, [logits], "cpu", torch.float64)
    for dtype in (torch.float32, torch.float16):  # mmdet's FocalLoss takes this path on CUDA
        gpu = _forward_backward(focal, [logits], CUDA, dtype)
        assert all(torch.isfinite(t).all() for t in gpu)
        tolerance = 1e-5 if dtype == torch.float32 else 2e-2
        for a, b in zip(gpu, cpu, strict=True):
            torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True])
def test_a_few_training_iterations_on_the_gpu(amp, synthetic_root, tmp_path):
    from tests.conftest import run_cardd

    work_dir = tmp_path / "run"
    result = run_cardd(
        "train", "--config", "tiny_DCN_plus", "--device", "cuda", "--data-root", synthetic_root,
        "--work-dir", work_dir, "--max-epochs", "2", "--seed", "0", *(["--amp"] if amp else []),
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    import json

    logs = [
        json.loads(line)
        for path in work_dir.glob("*/vis_data/scalars.json")
        for line in path.read_text().splitlines()
        if '"loss"' in line
    ]
    assert logs and all(torch.isfinite(torch.tensor(log["loss"])) for log in logs)


@pytest.mark.slow
def test_half_inference_on_the_gpu_finds_the_float32_detections(tiny_checkpoint, synthetic_root):
    from cardd import DamageDetector

    image = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    options = dict(device="cuda", score_thr=0.05)
    full = DamageDetector("tiny_DCN_plus", tiny_checkpoint, **options)
    half = DamageDetector("tiny_DCN_plus", tiny_checkpoint, half=True, **options)
    a, b = full.predict(image), half.predict(image)
    assert a, "the tiny model found nothing to compare"
    assert abs(len(a) - len(b)) <= max(2, len(a) // 10)
    for d, e in zip(a[:5], b[:5], strict=False):
        assert d.label == e.label and abs(d.score - e.score) < 0.02
