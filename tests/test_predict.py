"""`cardd infer`: output layout, schema, thresholds, paths, bad inputs, exit codes."""

import csv
import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from cardd.cli import cli
from cardd.errors import CarddUsageError
from cardd.predict import collect_inputs, prepare_out_dir

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
    assert prepare_out_dir(first, exist_ok=True) == first


def test_collect_inputs_globs_and_duplicates(two_folders):
    images = collect_inputs((str(two_folders / "*" / "car.jpg"),))
    assert [str(i.relative) for i in images] == ["car.jpg", "car_2.jpg"]
    flat = collect_inputs((str(two_folders / "b"),))
    assert [str(i.relative) for i in flat] == ["b/car.jpg"]  # no --recursive


def test_batches_give_the_same_outputs_layout(tiny_checkpoint, two_folders, tmp_path):
    out = tmp_path / "batched"
    result = _infer(
        str(two_folders / "b"),
        "--recursive",
        "--batch-size",
        "2",
        "--checkpoint",
        str(tiny_checkpoint),
        "--out-dir",
        str(out),
        "--no-vis",
    )
    assert result.exit_code == 0, result.output
    assert sorted(
        p.relative_to(out / "preds").as_posix() for p in (out / "preds").rglob("*.json")
    ) == ["b/car.jpg.json", "b/sub/deep.png.json"]
