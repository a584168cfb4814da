"""`cardd infer`: output layout, schema, thresholds, paths, bad inputs, exit codes."""

import csv
import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from cardd.cli.main import cli
from cardd.core.errors import CarddUsageError
from cardd.detector.inputs import collect_inputs
from cardd.infer.common import INFER_RUN
from cardd.infer.local import WriteBehind
from cardd.structures.classes import CLASSES
from tests.conftest import assert_real_picture, broken_links

pytestmark = pytest.mark.slow

DETECTION_KEYS = {"label", "category_id", "score", "bbox_xyxy", "area", "area_fraction", "mask"}


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory, synthetic_root):
    """a/ and b/ holding an image of the same name, b/ with a sub-folder."""
    root = tmp_path_factory.mktemp("inputs")
    test_images = sorted((synthetic_root / "test2017").glob("*.jpg"))
    (root / "a").mkdir()
    (root / "b" / "sub").mkdir(parents=True)
    shutil.copy(test_images[0], root / "a" / "car.jpg")
    shutil.copy(test_images[1], root / "b" / "car.jpg")
    Image.open(test_images[0]).save(root / "b" / "sub" / "deep.png")
    return root


def _infer(*args):
    return CliRunner().invoke(cli, ["infer", "--config", "tiny_DCN_plus", "--device", "cpu", *args])


def test_outputs_schema_and_layout(tiny_checkpoint, two_folders, tmp_path):
    out = tmp_path / "out"
    result = _infer(
        str(two_folders / "a"),
        str(two_folders / "b"),
        "--recursive",
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
        "--score-thr",
        "0.0",
    )
    assert result.exit_code == 0, result.output
    assert "3 images" in result.output and str(out) in result.output
    # the same file name in two folders does not collide
    for relative in ("a/car.jpg", "b/car.jpg", "b/sub/deep.png"):
        assert (out / "vis" / relative).is_file()
        pred = json.loads((out / "preds" / f"{relative}.json").read_text())
        assert set(pred) == {
            "image",
            "width",
            "height",
            "config",
            "checkpoint",
            "score_thr",
            "detections",
        }
        assert pred["checkpoint"] == str(tiny_checkpoint) and pred["score_thr"] == 0.0
        with Image.open(out / "vis" / relative) as vis:
            assert vis.size == (pred["width"], pred["height"])
        scores = [d["score"] for d in pred["detections"]]
        assert scores == sorted(scores, reverse=True)
        for d in pred["detections"]:
            assert set(d) == DETECTION_KEYS and 1 <= d["category_id"] <= 6
            assert d["mask"]["size"] == [pred["height"], pred["width"]]
    rows = list(csv.reader((out / "predictions.csv").open()))
    assert rows[0] == [
        "image",
        "label",
        "category_id",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
        "area",
        "area_fraction",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_processed"] == 3 and summary["images_failed"] == 0
    # index.html: every image, its thumbnail and picture, all links resolving
    index = out / "index.html"
    assert not broken_links(index)
    text = index.read_text()
    for relative in ("a/car.jpg", "b/car.jpg", "b/sub/deep.png"):
        assert f'href="vis/{relative}"' in text and f'src="thumbs/{relative}.jpg"' in text
        assert_real_picture(out / "thumbs" / f"{relative}.jpg", (100, 100))
    assert text.count('loading="lazy"') == 3
    assert summary["detections"] == len(rows) - 1 == sum(summary["detections_per_class"].values())
    assert summary["seconds_per_image"] > 0


def test_threshold_applies_to_json_csv_and_summary(tiny_checkpoint, two_folders, tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    _infer(
        str(two_folders / "a"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(low),
        "--score-thr",
        "0",
    )
    scores = [
        d["score"] for d in json.loads((low / "preds/a/car.jpg.json").read_text())["detections"]
    ]
    cut = sorted(scores)[len(scores) // 2]
    result = _infer(
        str(two_folders / "a"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(high),
        "--score-thr",
        str(cut),
        "--no-vis",
    )
    assert result.exit_code == 0, result.output
    pred = json.loads((high / "preds/a/car.jpg.json").read_text())
    assert pred["score_thr"] == cut
    assert all(d["score"] >= cut for d in pred["detections"])
    assert len(pred["detections"]) == sum(s >= cut for s in scores)
    rows = list(csv.DictReader((high / "predictions.csv").open()))
    assert len(rows) == len(pred["detections"]) and all(
        float(r["score"]) >= cut - 1e-5 for r in rows
    )
    assert not (high / "vis").exists()


def test_bad_inputs_are_skipped_and_reported(tiny_checkpoint, two_folders, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    data = (two_folders / "a" / "car.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = _infer(
        str(two_folders / "a" / "car.jpg"),
        str(bad),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "3 failed" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_processed"] == 1 and summary["images_failed"] == 3
    assert {f["image"].rsplit("/", 1)[1] for f in summary["failed"]} == {
        "empty.jpg",
        "text.png",
        "truncated.jpg",
    }
    assert all(f["reason"] for f in summary["failed"])


def test_a_failing_batch_is_a_failure_of_its_images_and_the_run_goes_on(
    tiny_checkpoint, two_folders, tmp_path, monkeypatch
):
    from cardd.detector.predictor import DamageDetector

    detect = DamageDetector.detect

    def failing_on_deep(self, arrays, names=None, **kwargs):  # e.g. out of memory on one photo
        if any(name.endswith("deep.png") for name in names or ()):
            raise RuntimeError("CUDA out of memory. Tried to allocate 9.00 GiB\n(details)")
        return detect(self, arrays, names, **kwargs)

    monkeypatch.setattr(DamageDetector, "detect", failing_on_deep)
    out = tmp_path / "out"
    result = _infer(
        str(two_folders / "a"), str(two_folders / "b"), "--recursive",
        "--checkpoint", str(tiny_checkpoint), "--out-dir", str(out), "--no-vis",
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_processed"] == 2 and summary["images_failed"] == 1
    (failure,) = summary["failed"]
    assert failure["image"].endswith("deep.png")
    assert failure["reason"] == (
        "the model failed on this batch: RuntimeError: CUDA out of memory. "
        "Tried to allocate 9.00 GiB"
    )
    assert sorted(p.name for p in (out / "preds").rglob("*.json")) == ["car.jpg.json"] * 2


def test_the_output_folder_is_checked_before_the_model_loads(two_folders, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "summary.json").write_text("{}")
    result = _infer(  # the checkpoint does not even exist: the folder is the first problem
        str(two_folders / "a"), "--checkpoint", str(tmp_path / "none.pth"),
        "--out-dir", str(taken),
    )  # fmt: skip
    assert result.exit_code == 2 and "--exist-ok" in result.output, result.output


def test_usage_errors_exit_two(tiny_checkpoint, tmp_path):
    assert (
        _infer(str(tmp_path / "missing.jpg"), "--checkpoint", str(tiny_checkpoint)).exit_code == 2
    )
    (tmp_path / "empty").mkdir()
    result = _infer(str(tmp_path / "empty"), "--checkpoint", str(tiny_checkpoint))
    assert result.exit_code == 2 and "no images found" in result.output
    assert _infer("x.jpg", "--score-thr", "1.5").exit_code == 2


def test_no_checkpoint_says_how_to_get_one(tmp_path, two_folders):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(cli, ["infer", str(two_folders / "a"), "--config", "tiny_DCN_plus"])
    assert result.exit_code == 1 and "cardd train --config tiny_DCN_plus" in result.output


def test_output_folders_never_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = INFER_RUN.open(None, exist_ok=False).local
    (first / "summary.json").write_text("{}")
    second = INFER_RUN.open(None, exist_ok=False).local
    assert (first.name, second.name) == ("exp", "exp2")
    with pytest.raises(CarddUsageError, match="--exist-ok"):
        INFER_RUN.open(first, exist_ok=False)
    (first / "notes.txt").write_text("mine")
    assert INFER_RUN.open(first, exist_ok=True).local == first
    assert not (first / "summary.json").exists()  # the earlier run's outputs are gone
    assert (first / "notes.txt").read_text() == "mine"  # nothing else is touched
    # a folder cardd never wrote: its vis/ and preds/ are not cardd's to empty
    mine = tmp_path / "my-project"
    (mine / "preds").mkdir(parents=True)
    (mine / "preds" / "labels.json").write_text("precious")
    with pytest.raises(CarddUsageError, match="no run of `cardd infer`"):
        INFER_RUN.open(mine, exist_ok=True)
    assert (mine / "preds" / "labels.json").read_text() == "precious"


def test_collect_inputs_globs_and_duplicates(two_folders):
    images = collect_inputs((str(two_folders / "*" / "car.jpg"),))
    assert [str(i.relative) for i in images] == ["car.jpg", "car_2.jpg"]
    flat = collect_inputs((str(two_folders / "b"),))
    assert [str(i.relative) for i in flat] == ["b/car.jpg"]  # no --recursive


def test_batch_of_two_gives_the_detections_of_batch_one(tiny_checkpoint, synthetic_root, tmp_path):
    """Two photos of one size: batching pads nothing, so it must change nothing. (Photos of
    different sizes are padded to the larger one in a batch, which moves low scores a little:
    mmdet's batching, not cardd's.)"""
    folder = tmp_path / "same_size"
    folder.mkdir()
    photo = Image.open(sorted((synthetic_root / "test2017").glob("*.jpg"))[0])
    photo.save(folder / "car.png")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "flipped.png")
    outputs = {}
    for batch in ("1", "2"):
        out = tmp_path / f"batch{batch}"
        result = _infer(
            str(folder),
            "--batch-size",
            batch,
            "--checkpoint",
            str(tiny_checkpoint),
            "--out-dir",
            str(out),
            "--score-thr",
            "0.05",
            "--no-vis",
        )
        assert result.exit_code == 0, result.output
        outputs[batch] = {
            p.relative_to(out / "preds").as_posix(): json.loads(p.read_text())["detections"]
            for p in (out / "preds").rglob("*.json")
        }
    assert sorted(outputs["2"]) == ["same_size/car.png.json", "same_size/flipped.png.json"]
    for name, detections in outputs["1"].items():
        batched = outputs["2"][name]
        assert len(batched) == len(detections) > 0
        assert [d["label"] for d in batched] == [d["label"] for d in detections]
        assert [d["score"] for d in batched] == pytest.approx(
            [d["score"] for d in detections], abs=1e-4
        )
        for a, b in zip(batched, detections, strict=True):
            assert a["bbox_xyxy"] == pytest.approx(b["bbox_xyxy"], abs=0.05)


def test_exist_ok_leaves_nothing_of_the_earlier_run(tiny_checkpoint, two_folders, tmp_path):
    out = tmp_path / "out"
    first = _infer(
        str(two_folders / "a"),
        str(two_folders / "b"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
    )
    assert first.exit_code == 0, first.output
    assert (out / "vis" / "a" / "car.jpg").is_file()
    refused = _infer(
        str(two_folders / "b"), "--checkpoint", str(tiny_checkpoint), "--out-dir", str(out)
    )
    assert refused.exit_code == 2 and "--exist-ok" in refused.output
    second = _infer(
        str(two_folders / "b"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
        "--exist-ok",
        "--no-vis",
    )
    assert second.exit_code == 0, second.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "index.html", "infer.log", "options.json", "predictions.csv", "preds/b/car.jpg.json",
        "summary.json",
    ]  # fmt: skip


def test_summary_json_contents(tiny_checkpoint, two_folders, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "bad.jpg").write_text("no")
    result = _infer(
        str(two_folders / "a"),
        str(tmp_path / "bad.jpg"),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
        "--score-thr",
        "0.2",
        "--no-vis",
    )
    assert result.exit_code == 1
    summary = json.loads((out / "summary.json").read_text())
    pred = json.loads((out / "preds/a/car.jpg.json").read_text())
    counts = {name: 0 for name in CLASSES}
    for d in pred["detections"]:
        counts[d["label"]] += 1
    assert summary == {
        "config": pred["config"],
        "checkpoint": str(tiny_checkpoint),
        "score_thr": 0.2,
        "half": False,
        "batch_size": 1,
        "images_processed": 1,
        "images_resumed": 0,
        "images_failed": 1,
        "failed": [{"image": str(tmp_path / "bad.jpg"), "reason": summary["failed"][0]["reason"]}],
        "detections": len(pred["detections"]),
        "detections_per_class": counts,
        "classes": [{"id": i, "name": n} for i, n in enumerate(CLASSES, start=1)],
        "seconds_per_image": summary["seconds_per_image"],
    }
    assert "not an image" in summary["failed"][0]["reason"]
    index = (out / "index.html").read_text()
    assert "Failed" in index and "bad.jpg" in index and not broken_links(out / "index.html")
    assert pred["config"].endswith("tiny_DCN_plus.py") and summary["seconds_per_image"] > 0
    saved = json.loads((out / "options.json").read_text())  # how the run was made
    assert saved["checkpoint"] == str(tiny_checkpoint) and saved["device"] == "cpu"
    assert saved["out_dir"] == str(out) and saved["visualize"] is False  # --no-vis


def _run_files(out):
    """Every file of a run's outputs with its bytes, but summary.json's timing, the log
    (timestamped lines) and the options (the runs compared differ in them)."""
    files = {}
    skipped = ("infer.log", "options.json")
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name not in skipped):
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            summary.pop("seconds_per_image")
            data = summary
        files[path.relative_to(out).as_posix()] = data
    return files


def test_decoding_ahead_and_writing_behind_change_nothing(
    tiny_checkpoint, synthetic_root, tmp_path
):
    """Threads decoding ahead and writing behind the model write, byte for byte, what a run
    without them writes: every image, in order, failures in their place, the last
    part-batch included."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((synthetic_root / "test2017").glob("*.jpg"))
    for i in range(7):
        shutil.copy(photos[i % len(photos)], folder / f"{i}.jpg")
    (folder / "3.jpg").write_text("not an image")  # a failure in the middle of a batch
    runs = {}
    for workers in ("0", "3"):
        out = tmp_path / f"workers{workers}"
        result = _infer(
            str(folder),
            "--workers",
            workers,
            "--batch-size",
            "3",
            "--checkpoint",
            str(tiny_checkpoint),
            "--out-dir",
            str(out),
            "--score-thr",
            "0.05",
        )
        assert result.exit_code == 1 and "1 failed" in result.output, result.output
        runs[workers] = _run_files(out)
    assert runs["3"] == runs["0"]
    assert sum(name.startswith("vis/") for name in runs["0"]) == 6
    rows = list(csv.reader(runs["0"]["predictions.csv"].decode().splitlines()))[1:]
    order = [row[0].rsplit("/", 1)[1] for row in rows]
    assert order == sorted(order, key=lambda n: int(n.split(".")[0])) and len(set(order)) == 6


def test_write_behind_keeps_order_and_raises_a_failed_write():
    import random
    import time

    written = []

    def slow_write(n):
        time.sleep(random.random() / 200)
        written.append(n)

    with WriteBehind(workers=3, window=2) as overlap:
        for n in range(40):
            overlap.write(slow_write, n)
    assert written == list(range(40))

    def failing_write(n):
        if n == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), WriteBehind(workers=2, window=2) as overlap:
        for n in range(20):
            overlap.write(failing_write, n)


def _box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def test_half_runs_in_float16_and_finds_the_detections_of_float32(tiny_checkpoint, synthetic_root):
    """--half computes in float16 (autocast) and hands out float32 results close to
    float32's: the features (deformable convolutions included) within 1% and every
    detection found in both runs with its score within 0.01 and its mask. The one-epoch
    test model scores its 100 detections per photo within 0.01 of each other, so float16
    reorders near-ties and which of them make the top 100 changes: the comparison is per
    matched box. (The real model's agreement: scripts/bench/bench_infer.py on a GPU.)"""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate

    from cardd.detector.predictor import DamageDetector
    from cardd.detector.torch_backend import _SampleDetections
    from cardd.structures.images import load_image

    arrays = [load_image(sorted((synthetic_root / "test2017").glob("*.jpg"))[0])]
    full = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=0.0)
    half = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=0.0, half=True)
    (exact_sample,) = full.backend.forward(arrays)
    (half_sample,) = half.backend.forward(arrays)
    assert exact_sample.pred_instances.bboxes.dtype == torch.float32
    assert half_sample.pred_instances.bboxes.dtype == torch.float16
    model = full.model
    inputs = model.data_preprocessor(
        pseudo_collate([full.backend.pipeline({"img": arrays[0], "img_id": 0})]), False
    )["inputs"]
    with torch.no_grad():
        features = model.extract_feat(inputs)
        with torch.autocast("cpu", dtype=torch.float16):
            half_features = model.extract_feat(inputs)
    for x, y in zip(features, half_features, strict=True):
        assert y.dtype == torch.float16
        assert (x - y.float()).norm() / x.norm() < 0.01

    height, width = arrays[0].shape[:2]
    exact = full._detections(_SampleDetections(exact_sample), 0.0)
    approximate = half._detections(_SampleDetections(half_sample), 0.0)
    assert approximate
    for d in approximate:
        assert isinstance(d.score, float) and d.mask.dtype == bool
        assert d.mask.shape == (height, width)
    matched, mask_ious = 0, []
    for d in exact:
        same = [e for e in approximate if e.label == d.label]
        best = max(same, key=lambda e: _box_iou(e.bbox_xyxy, d.bbox_xyxy), default=None)
        if best is None or _box_iou(best.bbox_xyxy, d.bbox_xyxy) < 0.95:
            continue
        matched += 1
        assert best.score == pytest.approx(d.score, abs=0.01)
        mask_ious.append((best.mask & d.mask).sum() / max(1, (best.mask | d.mask).sum()))
    assert matched >= 10, (matched, len(exact))
    assert np.median(mask_ious) > 0.8, np.median(mask_ious)
