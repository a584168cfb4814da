"""The installed kernels reproduce mmcv's compiled ones, on numbers saved from them.

`tests/fixtures/mmcv_golden_ops.pt` holds inputs, outputs and gradients that mmcv 2.1.0's
compiled CPU kernels produced (`scripts/dev/make_golden_ops.py`): every default run
compares cardd's kernels with them, so a convention that differs from mmcv's (offset
order, half-pixel shift, mask, NMS offset) fails here without the
compiled build. Runs on the device `CARDD_TEST_DEVICE` names (default cpu).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DEVICE = torch.device(os.environ.get("CARDD_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip("CARDD_TEST_DEVICE=cuda but no GPU is visible", allow_module_level=True)

GOLDEN = torch.load(
    Path(__file__).parents[1] / "fixtures" / "mmcv_golden_ops.pt",
    weights_only=True,
    map_location="cpu",
)
TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # float32, another summation order


def _cases(prefix: str) -> list[str]:
    return sorted(name for name in GOLDEN if name.startswith(prefix))


def _on(tensor: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """A copy on the test device (cases share tensors: gradients must not accumulate)."""
    return tensor.detach().clone().to(DEVICE).requires_grad_(grad)


def test_the_golden_numbers_came_from_mmcvs_compiled_kernels():
    assert GOLDEN["made_with"].startswith("mmcv 2.1.0 compiled kernels")
    assert len(_cases("dcn_")) == 6 and len(_cases("roi_align_")) == 4
    assert len(_cases("nms_")) == 4  # no focal loss: mmcv has no CPU kernel to take it from


@pytest.mark.parametrize("name", _cases("dcn_"))
def test_deformable_convolution_matches_mmcv(name):
    from mmcv.ops import deform_conv2d, modulated_deform_conv2d

    case = GOLDEN[name]
    inputs = {key: _on(value, grad=True) for key, value in case["inputs"].items()}
    geometry = case["geometry"].tolist()
    if "mask" in inputs:
        i = inputs
        out = modulated_deform_conv2d(
            i["x"], i["offset"], i["mask"], i["weight"], i["bias"], *geometry
        )
    else:
        out = deform_conv2d(inputs["x"], inputs["offset"], inputs["weight"], *geometry)
    torch.testing.assert_close(out.detach().cpu(), case["output"], **TOLERANCE)
    out.backward(case["grad_output"].to(DEVICE))
    for key, leaf in inputs.items():
        torch.testing.assert_close(leaf.grad.cpu(), case["grads"][key], **TOLERANCE, msg=key)


@pytest.mark.parametrize("name", _cases("roi_align_"))
def test_roi_align_matches_mmcv(name):
    from mmcv.ops import roi_align

    case = GOLDEN[name]
    feature = _on(case["feature"], grad=True)
    out = roi_align(
        feature, case["rois"].to(DEVICE), (3, 3), 0.5, int(case["sampling_ratio"]), "avg",
        bool(case["aligned"]),
    )  # fmt: skip
    torch.testing.assert_close(out.detach().cpu(), case["output"], **TOLERANCE)
    out.backward(case["grad_output"].to(DEVICE))
    torch.testing.assert_close(feature.grad.cpu(), case["grad_feature"], **TOLERANCE)


@pytest.mark.parametrize("name", _cases("nms_"))
def test_nms_matches_mmcv(name):
    from mmcv.ops import nms

    case = GOLDEN[name]
    _, keep = nms(
        case["boxes"].to(DEVICE), case["scores"].to(DEVICE), float(case["iou_threshold"]),
        offset=int(case["offset"]),
    )  # fmt: skip
    assert keep.cpu().tolist() == case["keep"].tolist()
