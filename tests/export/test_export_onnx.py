"""`cardd export --format onnx`: one ONNX graph that onnxruntime runs without PyTorch, with
PyTorch's detections.

The ONNX side always runs in a process where importing torch, torchvision, mmcv,
mmdet or mmengine fails (`tests/support/no_torch/sitecustomize.py`), as in `make onnx-env`.
"""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from tests.conftest import read_json, run_cardd
from tests.support import live_service
from tests.support.engines import (
    NO_TORCH,
    assert_same_answers,
    infer_docs,
    photos_list,
    without_torch,
)
from tests.support.engines import infer_docs_of as _infer

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def onnx_model(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    done = run_cardd("export", "--checkpoint", tiny_checkpoint, "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_export_writes_a_checked_self_describing_graph(onnx_model, tiny_checkpoint):
    import onnx

    path, output = onnx_model
    assert "checked with onnxruntime against PyTorch" in output and "sha256" in output
    model = onnx.load(str(path))
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 19
    kinds = {node.op_type for node in model.graph.node}
    # DCN as the standard op, NMS and RoIAlign in the graph: no custom domain
    assert {"DeformConv", "NonMaxSuppression", "RoiAlign"} <= kinds
    assert all(not node.domain for node in model.graph.node)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["cardd"])
    assert meta["dataset_meta"]["classes"] == [
        "dent", "scratch", "crack", "glass shatter", "lamp broken", "tire flat"]  # fmt: skip
    assert meta["preprocessing"]["resize_scale"] == [320, 256]
    assert meta["preprocessing"]["mean"] == [123.675, 116.28, 103.53]
    assert meta["source"] == tiny_checkpoint.name and len(meta["source_sha256"]) == 64
    assert meta["min_onnxruntime"] == "1.25.0"
    # the image's height and width are free: one graph for every photo size
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]


def test_infer_without_torch_gives_pytorchs_answers(onnx_model, tiny_checkpoint, photos, tmp_path):
    """The same photos through `cardd infer` with the checkpoint (PyTorch) and with the
    ONNX export in a process without PyTorch: every detection agrees."""
    path, _ = onnx_model
    for threshold in (0.05, 0.99):  # the model's cap of detections, and none at all
        expected = _infer(tiny_checkpoint, photos, tmp_path / f"pth{threshold}", threshold)
        got = _infer(path, photos, tmp_path / f"onnx{threshold}", threshold, torch_free=True)
        worst = assert_same_answers(expected, got)
        counts = [len(doc["detections"]) for doc in got.values()]
        if threshold == 0.05:
            assert worst["detections"] >= 5 * 40 and max(counts) == 50, counts  # many
        else:
            assert counts == [0] * len(photos_list(photos)), counts
    csv = (tmp_path / "onnx0.05" / "predictions.csv").read_text().splitlines()
    assert len(csv) == 1 + sum(len(d["detections"]) for d in
                               infer_docs(tmp_path / "onnx0.05").values())  # fmt: skip
    assert (tmp_path / "onnx0.05" / "index.html").is_file()
    assert len(list((tmp_path / "onnx0.05" / "vis").rglob("*.png"))) == 6


def test_serve_without_torch_answers_as_infer(onnx_model, photos, tmp_path):
    """Two replicas of an ONNX model (once refused) without PyTorch; the API key reaches
    them in a private file, not in their environment."""
    path, _ = onnx_model
    expected = _infer(path, photos, tmp_path / "infer", 0.05, torch_free=True)
    key = {"Authorization": "Bearer k3y-in-a-file"}
    with live_service.running(path, tmp_path / "serve.log", "--score-thr", "0.05",
                              "--replicas", "2", "--api-key", "k3y-in-a-file",
                              env={**NO_TORCH, "OMP_NUM_THREADS": "1"}, config=None) as service:
        health = requests.get(f"{service.url}/health", headers=key, timeout=10).json()
        assert health["checkpoint_sha256"] == __import__("hashlib").sha256(
            path.read_bytes()).hexdigest()
        assert health["replica"]["of"] == 2
        environment = Path(f"/proc/{health['replica']['pid']}/environ").read_bytes()
        assert b"k3y-in-a-file" not in environment
        for name in ("landscape", "portrait"):
            with open(photos / f"{name}.png", "rb") as f:
                answer = requests.post(f"{service.url}/v1/detect", files={"image": f},
                                       headers=key, timeout=60).json()  # fmt: skip
            got = answer["detections"]
            want = expected[name]["detections"]
            assert [d["label"] for d in got] == [d["label"] for d in want]
            assert [d["bbox_xyxy"] for d in got] == [d["bbox_xyxy"] for d in want]
            assert [d["score"] for d in got] == [d["score"] for d in want]
        bad = requests.post(f"{service.url}/v1/detect", files={"image": b"not an image"},
                            headers=key, timeout=10)  # fmt: skip
        assert bad.status_code == 400


def _close(a, b, where=""):
    """Two metrics trees equal, numbers within 0.05 (they are percents with 2 decimals)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 0.05, (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_eval_of_the_export_scores_as_the_checkpoint(onnx_model, tiny_checkpoint, synthetic_root,
                                                     tmp_path):  # fmt: skip
    """`cardd eval` of the ONNX export (no PyTorch) gives the checkpoint's AP: box and mask,
    per class, in both size bins, the best-F1 thresholds and the confusion matrix."""
    path, _ = onnx_model
    args = ("eval", "--data-root", synthetic_root, "--split", "val", "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = run_cardd(*args, "--checkpoint", tiny_checkpoint, "--out", tmp_path / "pth", env=env)
    assert done.returncode == 0, done.stderr
    done = without_torch(*args, "--checkpoint", path, "--out", tmp_path / "onnx")
    assert done.returncode == 0, done.stderr
    expected = read_json(tmp_path / "pth" / "metrics.json")
    got = read_json(tmp_path / "onnx" / "metrics.json")
    assert got["engine"] == "onnxruntime" and got["images"] == expected["images"]
    for key in ("bbox", "segm", "classes", "confusion_matrix"):
        _close(expected[key], got[key], key)
    assert (tmp_path / "onnx" / "report.html").is_file()
    refused = without_torch(*args, "--checkpoint", path, "--config", "DCN_plus",
                            "--out", tmp_path / "x")  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "x").exists()


def test_refusals(onnx_model, tiny_checkpoint, tmp_path):
    path, _ = onnx_model
    again = run_cardd("export", "--checkpoint", tiny_checkpoint, "--out", path)
    assert again.returncode == 2 and "--force" in again.stderr
    half = run_cardd("export", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "h.onnx",
                     "--half")  # fmt: skip
    assert half.returncode == 2 and "float32" in half.stderr
    suffix = run_cardd("export", "--checkpoint", tiny_checkpoint, "--format", "onnx", "--out",
                       tmp_path / "m.pth")  # fmt: skip
    assert suffix.returncode == 2 and "*.onnx" in suffix.stderr
    assert not list(tmp_path.iterdir())  # nothing written, no partial file left
    back = run_cardd("export", "--checkpoint", path, "--out", tmp_path / "back.pth")
    assert back.returncode == 1 and "is an ONNX export" in back.stderr
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((64, 64, 3), np.uint8))
    with_config = without_torch("infer", photo, "--checkpoint", path, "--config", "DCN_plus")
    assert with_config.returncode == 2 and "carries its own settings" in with_config.stderr
    half_infer = without_torch("infer", photo, "--checkpoint", path, "--half")
    assert half_infer.returncode == 2 and "--half" in half_infer.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    refused = without_torch("infer", photo, "--checkpoint", garbage, "--out-dir", tmp_path / "o")
    assert refused.returncode == 1 and "not an ONNX model" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "o").exists()


def test_the_install_without_pytorch_runs_the_model(onnx_model, photos, tmp_path):
    """`make onnx-env`'s script builds a venv with no torch, mmcv, mmdet or mmengine in
    it, whose `cardd infer` gives the same JSON as the blocked-import run."""
    import subprocess

    path, _ = onnx_model
    venv = tmp_path / "venv"
    script = Path(__file__).parents[2] / "scripts" / "setup" / "setup_onnx_env.sh"
    built = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "ONNX_VENV": str(venv)})  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert "no PyTorch" in built.stdout
    lib = next(venv.glob("lib/python*/site-packages"))
    assert not [m for m in ("torch", "mmcv", "mmdet", "mmengine") if (lib / m).exists()]
    out = tmp_path / "out"
    done = subprocess.run(
        [str(venv / "bin" / "cardd"), "infer", str(photos / "landscape.png"), "--checkpoint",
         str(path), "--score-thr", "0.05", "--out-dir", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doctor = subprocess.run([str(venv / "bin" / "cardd"), "doctor"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert doctor.returncode == 0 and "the ONNX runtime" in doctor.stdout, doctor.stdout
    expected = _infer(path, photos, tmp_path / "blocked", 0.05, torch_free=True)["landscape"]
    got = infer_docs(out)["landscape"]
    assert got["detections"] == expected["detections"] and got["detections"]


def test_objectness_keeps_its_relative_precision_in_onnxruntime():
    """The RPN ranks anchors by sigmoid scores that are mostly tiny (5e-5); the graph's
    logistic keeps onnxruntime within 1e-5 of PyTorch relatively there, where ONNX
    `Sigmoid` (the control) is off by more than 1e-3, which reordered proposals."""
    import io

    import onnxruntime
    import torch

    from cardd.export.graph_ops import sigmoid

    class Logistic(torch.nn.Module):
        def __init__(self, function):
            super().__init__()
            self.function = function

        def forward(self, x):
            return self.function(x)

    logits = torch.linspace(-20, 5, 50001)
    expected = torch.sigmoid(logits.double()).numpy()

    def worst(function) -> float:
        buffer = io.BytesIO()
        torch.onnx.export(Logistic(function), (logits,), buffer, opset_version=19,
                          input_names=["x"], dynamo=False)  # fmt: skip
        session = onnxruntime.InferenceSession(buffer.getvalue(),
                                               providers=["CPUExecutionProvider"])  # fmt: skip
        got = session.run(None, {"x": logits.numpy()})[0]
        return float((np.abs(got - expected) / expected).max())

    assert worst(sigmoid) < 1e-5
    assert worst(torch.sigmoid) > 1e-3
