"""Running one model on two engines: PyTorch, and onnxruntime in a process where
importing torch, torchvision, mmcv, mmdet or mmengine fails
(`tests/support/no_torch/sitecustomize.py`, as in `make onnx-env`), and comparing what
they found, detection by detection."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from tests.conftest import read_json, run_cardd

NO_TORCH = {"PYTHONPATH": str(Path(__file__).parent / "no_torch")}
# the tolerances the ONNX route promises (README: "Without PyTorch: ONNX")
BOX_PX, SCORE, MASK_IOU = 0.5, 1e-3, 0.98


def without_torch(*args, **kwargs):
    """`cardd ARGS` in a fresh process that cannot import PyTorch or OpenMMLab."""
    env = {**os.environ, **NO_TORCH, "OMP_NUM_THREADS": "1"}
    return run_cardd(*args, env=env, **kwargs)


def infer_docs_of(model, photos, out, threshold, torch_free=False):
    args = ("infer", photos, "--checkpoint", model, "--out-dir", out, "--device", "cpu",
            "--score-thr", str(threshold), "--workers", "0")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = without_torch(*args) if torch_free else run_cardd(*args, env=env)
    assert done.returncode == 0, done.stderr
    return infer_docs(out)


def mask_of(detection):
    return mask_utils.decode({"size": detection["mask"]["size"],
                              "counts": detection["mask"]["counts"].encode()}).astype(bool)


def assert_same_answers(torch_docs: dict, onnx_docs: dict) -> dict:
    """Every detection of every photo: same classes in the same order, boxes, scores and
    masks within the tolerances. Returns the worst differences seen."""
    assert torch_docs.keys() == onnx_docs.keys()
    worst = {"box_px": 0.0, "score": 0.0, "mask_iou": 1.0, "detections": 0}
    for name, expected in torch_docs.items():
        got = onnx_docs[name]
        assert (got["width"], got["height"]) == (expected["width"], expected["height"])
        assert [d["label"] for d in got["detections"]] == [
            d["label"] for d in expected["detections"]
        ], name
        for mine, theirs in zip(got["detections"], expected["detections"], strict=True):
            box = np.abs(np.subtract(mine["bbox_xyxy"], theirs["bbox_xyxy"])).max()
            score = abs(mine["score"] - theirs["score"])
            a, b = mask_of(mine), mask_of(theirs)
            union = np.count_nonzero(a | b)
            iou = np.count_nonzero(a & b) / union if union else 1.0
            assert box <= BOX_PX and score <= SCORE and iou >= MASK_IOU, (name, box, score, iou)
            worst["box_px"] = max(worst["box_px"], float(box))
            worst["score"] = max(worst["score"], score)
            worst["mask_iou"] = min(worst["mask_iou"], iou)
            worst["detections"] += 1
    return worst


def photos_list(folder):
    return sorted(folder.glob("*.png"))


def infer_docs(out):
    """preds/**/NAME.png.json by photo name."""
    return {path.name.split(".")[0]: read_json(path) for path in (out / "preds").rglob("*.json")}
