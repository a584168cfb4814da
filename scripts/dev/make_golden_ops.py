"""Write `tests/fixtures/mmcv_golden_ops.pt`: inputs and outputs of mmcv's compiled kernels.

Run once with the compiled build installed (`CARDD_OPS=compiled make setup`, CPU
ops are enough), then switch back (`make setup`). Every default `make test` compares
cardd's kernels with these numbers (`tests/openmmlab/test_kernel_golden.py`), so the
conventions that otherwise could only be checked against the compiled build are
checked always. The cases are the ones DCN_plus reaches: deformable convolution
v1 and v2 (forward and every gradient), RoIAlign (aligned or not, fixed and
adaptive sampling; forward and gradient), NMS (with the legacy offset). Not the
sigmoid focal loss: mmcv has no CPU kernel for it (`tests/openmmlab/test_kernel_reference.py`
checks it against its formula and against mmdet's own torch version). Float32, a
few KB, plain tensors (loads weights-only).

    python scripts/dev/make_golden_ops.py [--out tests/fixtures/mmcv_golden_ops.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "mmcv_golden_ops.pt"


def _leaf(generator, *shape, scale=1.0, shift=0.0):
    return (scale * torch.rand(*shape, generator=generator) + shift).requires_grad_(True)


def dcn_cases(generator) -> dict:
    from mmcv.ops import deform_conv2d, modulated_deform_conv2d

    cases = {}
    for name, (stride, padding, dilation, groups, deform_groups) in {
        "dcn_3x3": (1, 1, 1, 1, 1),
        "dcn_stride2_groups2": (2, 1, 1, 2, 2),
        "dcn_dilation2": (1, 2, 2, 1, 1),
    }.items():
        for modulated in (False, True):
            x = _leaf(generator, 1, 4, 5, 6)
            weight = _leaf(generator, 4, 4 // groups, 3, 3, scale=2.0, shift=-1.0)
            out_h = (5 + 2 * padding - dilation * 2 - 1) // stride + 1
            out_w = (6 + 2 * padding - dilation * 2 - 1) // stride + 1
            offset = _leaf(generator, 1, deform_groups * 18, out_h, out_w, scale=5.0, shift=-2.5)
            mask = _leaf(generator, 1, deform_groups * 9, out_h, out_w)
            bias = _leaf(generator, 4)
            geometry = (stride, padding, dilation, groups, deform_groups)
            if modulated:
                inputs = {"x": x, "offset": offset, "mask": mask, "weight": weight, "bias": bias}
                out = modulated_deform_conv2d(x, offset, mask, weight, bias, *geometry)
            else:
                inputs = {"x": x, "offset": offset, "weight": weight}
                out = deform_conv2d(x, offset, weight, *geometry)
            grad_out = torch.randn(out.shape, generator=generator)
            out.backward(grad_out)
            cases[f"{name}{'_modulated' if modulated else ''}"] = {
                "geometry": torch.tensor(geometry),
                "inputs": {k: v.detach().clone() for k, v in inputs.items()},
                "grad_output": grad_out,
                "output": out.detach().clone(),
                "grads": {k: v.grad.clone() for k, v in inputs.items()},
            }
    return cases


def roi_align_cases(generator) -> dict:
    from mmcv.ops import roi_align

    feature = torch.rand(2, 2, 8, 10, generator=generator)
    rois = torch.tensor([
        [0, 1.3, 0.7, 9.9, 8.2], [1, -2.0, 3.0, 14.5, 11.0], [0, 4.1, 4.2, 4.6, 4.4],
        [1, 2.0, 1.0, 22.0, 18.0], [0, 0.0, 0.0, 12.0, 10.0],
    ])  # fmt: skip
    cases = {}
    for aligned in (True, False):
        for sampling_ratio in (2, 0):
            leaf = feature.clone().requires_grad_(True)
            out = roi_align(leaf, rois, (3, 3), 0.5, sampling_ratio, "avg", aligned)
            grad_out = torch.randn(out.shape, generator=generator)
            out.backward(grad_out)
            cases[f"roi_align_aligned{int(aligned)}_ratio{sampling_ratio}"] = {
                "feature": feature, "rois": rois, "aligned": torch.tensor(aligned),
                "sampling_ratio": torch.tensor(sampling_ratio), "output": out.detach().clone(),
                "grad_output": grad_out, "grad_feature": leaf.grad.clone(),
            }  # fmt: skip
    return cases


def nms_cases(generator) -> dict:
    from mmcv.ops import nms

    corners = torch.rand(40, 2, generator=generator) * 50
    sizes = torch.rand(40, 2, generator=generator) * 20 + 2
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(40, generator=generator)
    cases = {}
    for offset in (0, 1):
        for threshold in (0.3, 0.6):
            _, keep = nms(boxes, scores, threshold, offset=offset)
            cases[f"nms_offset{offset}_iou{threshold}"] = {
                "boxes": boxes, "scores": scores, "offset": torch.tensor(offset),
                "iou_threshold": torch.tensor(threshold), "keep": keep.clone(),
            }  # fmt: skip
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import mmcv
    import mmcv._ext

    if mmcv._ext.__file__.endswith(".py"):
        raise SystemExit("mmcv's compiled kernels are not installed: CARDD_OPS=compiled make setup")
    generator = torch.Generator().manual_seed(20261202)
    golden = {
        "made_with": f"mmcv {mmcv.__version__} compiled kernels ({Path(mmcv._ext.__file__).name}), "
        f"torch {torch.__version__}, CPU",
        **dcn_cases(generator),
        **roi_align_cases(generator),
        **nms_cases(generator),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(golden, args.out)
    print(f"{args.out}: {len(golden) - 1} cases, {args.out.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
