"""`cardd infer`: output layout, schema, thresholds, paths, bad inputs, exit codes."""

import csv
import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from cardd.classes import CLASSES
from cardd.cli import cli
from cardd.errors import CarddUsageError
from cardd.infer import collect_inputs, prepare_out_dir
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
    first = prepare_out_dir(None, exist_ok=False)
    (first / "summary.json").write_text("{}")
    second = prepare_out_dir(None, exist_ok=False)
    assert (first.name, second.name) == ("exp", "exp2")
    with pytest.raises(CarddUsageError, match="--exist-ok"):
        prepare_out_dir(first, exist_ok=False)
    (first / "notes.txt").write_text("mine")
    assert prepare_out_dir(first, exist_ok=True) == first
    assert not (first / "summary.json").exists()  # the earlier run's outputs are gone
    assert (first / "notes.txt").read_text() == "mine"  # nothing else is touched


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
    assert files == ["index.html", "predictions.csv", "preds/b/car.jpg.json", "summary.json"]


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
        "images_processed": 1,
        "images_failed": 1,
        "failed": [{"image": str(tmp_path / "bad.jpg"), "reason": summary["failed"][0]["reason"]}],
        "detections": len(pred["detections"]),
        "detections_per_class": counts,
        "seconds_per_image": summary["seconds_per_image"],
    }
    assert "not an image" in summary["failed"][0]["reason"]
    index = (out / "index.html").read_text()
    assert "Failed" in index and "bad.jpg" in index and not broken_links(out / "index.html")
    assert pred["config"].endswith("tiny_DCN_plus.py") and summary["seconds_per_image"] > 0
