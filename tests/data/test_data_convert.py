"""`cardd convert yolo`: YOLO exports (Ultralytics', Roboflow's) to COCO, checked."""

import hashlib
import json

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.data.check import check_spec
from cardd.data.convert import ConversionFailed, convert_yolo
from cardd.data.spec import load_data_file
from tests.support.datasets import to_yolo


def _tree_hash(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_polygons_come_back_as_the_coco_they_were_made_from(synthetic_root, tmp_path):
    source = to_yolo(synthetic_root, tmp_path / "yolo")
    before = _tree_hash(tmp_path / "yolo")
    report = convert_yolo(source, tmp_path / "coco")
    assert _tree_hash(tmp_path / "yolo") == before  # the source is only read
    assert report.polygons > 0 and report.boxes == 0 and not report.problems
    spec = load_data_file(tmp_path / "coco/data.yaml")
    assert check_spec(spec, deep=True).ok
    classes = spec.classes()
    assert classes.ids == tuple(range(6))  # YOLO's class indices, kept
    for split in ("train", "val", "test"):
        original = json.loads(
            (synthetic_root / f"annotations/instances_{split}2017.json").read_text()
        )
        converted = json.loads(spec.split(split).annotations.read_text())
        assert [i["file_name"] for i in converted["images"]] == [
            i["file_name"] for i in original["images"]
        ]
        assert len(converted["annotations"]) == len(original["annotations"])
        for a, b in zip(original["annotations"], converted["annotations"], strict=True):
            assert b["category_id"] == a["category_id"] - 1
            assert max(abs(x - y) for x, y in zip(a["bbox"], b["bbox"], strict=True)) < 0.15
            polygon_a, polygon_b = a["segmentation"][0], b["segmentation"][0]
            assert max(abs(x - y) for x, y in zip(polygon_a, polygon_b, strict=True)) < 0.01
            assert b["id"] >= 1  # COCOeval reads id 0 as "no match"


def test_roboflow_boxes_become_rectangles_and_valid_is_val(synthetic_root, tmp_path):
    source = to_yolo(synthetic_root, tmp_path / "robo", boxes=True, roboflow=True)
    result = CliRunner().invoke(cli, ["convert", "yolo", str(source), str(tmp_path / "coco")])
    assert result.exit_code == 0, result.output
    assert "boxes (masks: their rectangles)" in result.output
    spec = load_data_file(tmp_path / "coco/data.yaml")
    assert list(spec.splits) == ["train", "val", "test"]
    val = json.loads(spec.split("val").annotations.read_text())
    x, y, w, h = val["annotations"][0]["bbox"]
    assert val["annotations"][0]["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
    assert check_spec(spec).ok


def test_bad_lines_are_reported_by_file_and_line_and_nothing_is_written(synthetic_root, tmp_path):
    source = to_yolo(synthetic_root, tmp_path / "yolo")
    labels = sorted((tmp_path / "yolo/labels/train").glob("*.txt"))
    first = labels[0].read_text().splitlines()
    first[1:1] = ["0 0.5 0.5 1.5 0.2", "9 0.5 0.5 0.1 0.1", "2 0.1 0.1 0.2", "x y z w h"]
    labels[0].write_text("\n".join(first) + "\n")
    (tmp_path / "yolo/labels/train/orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    out = tmp_path / "coco"
    with pytest.raises(ConversionFailed) as failed:
        convert_yolo(source, out)
    problems = failed.value.report.problems
    assert not out.exists()
    assert [p.split(": ")[0] for p in problems[:4]] == [f"{labels[0]}:{n}" for n in (2, 3, 4, 5)]
    assert "outside [0, 1]" in problems[0] and "not among the 6 names" in problems[1]
    assert "a box has 4" in problems[2] and "not numbers" in problems[3]
    assert any("orphan.txt: a label file without its image" in p for p in problems)
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", "yolo", str(source), str(out)])
    assert result.exit_code == 1 and f"{labels[0]}:3: class 9" in result.output
    assert "5 problems" in result.output and "Traceback" not in result.output and not out.exists()
    result = runner.invoke(cli, ["convert", "yolo", str(source), str(out), "--skip-bad"])
    assert result.exit_code == 0 and "left out 5 problems (4 bad lines)" in result.output
    assert check_spec(load_data_file(out / "data.yaml")).ok
    result = runner.invoke(cli, ["convert", "yolo", str(source), str(out), "--skip-bad"])
    assert result.exit_code == 1 and "already exists" in result.output


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: images/train\n", "`names` must list"),
        ("train: images/train\nnames: {0: a, 2: b}\n", "keys must be 0, 1, 2"),
        ("train: images/train\nnames: {0: a, x: b}\n", "keys must be 0, 1, 2"),  # TypeError once
        ("train: images/train\nnc: 3\nnames: [a, b]\n", "nc is 3"),
        ("val: images/val\nnames: [a]\n", "no train split"),
        ("train: images/nowhere\nnames: [a]\n", "does not exist"),
    ],
)
def test_bad_data_yaml_is_one_line(synthetic_root, tmp_path, yaml_text, message):
    to_yolo(synthetic_root, tmp_path / "yolo")
    (tmp_path / "yolo/data.yaml").write_text(yaml_text)
    result = CliRunner().invoke(
        cli, ["convert", "yolo", str(tmp_path / "yolo"), str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


@pytest.mark.parametrize("out", [".", "converted", ".."])
def test_an_output_that_is_holds_or_lies_in_the_source_is_refused(synthetic_root, tmp_path, out):
    """`convert yolo ds ds --force` once replaced the source with its conversion."""
    source = to_yolo(synthetic_root, tmp_path / "yolo")
    before = _tree_hash(tmp_path / "yolo")
    target = (tmp_path / "yolo" / out) if out != ".." else tmp_path
    result = CliRunner().invoke(cli, ["convert", "yolo", str(source), str(target), "--force"])
    assert result.exit_code == 1 and "would delete the source" in result.output, result.output
    assert _tree_hash(tmp_path / "yolo") == before


def test_a_converted_dataset_has_the_usual_folder_mode(synthetic_root, tmp_path):
    import os
    import stat

    source = to_yolo(synthetic_root, tmp_path / "yolo")
    convert_yolo(source, tmp_path / "coco")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "coco").stat().st_mode) == 0o777 & ~mask  # not 0700


def test_polygons_overshooting_by_a_pixel_are_clipped_and_counted(synthetic_root, tmp_path):
    """A real export's hand-drawn polygon at 1.000977 on a 1024-px photo was refused whole."""
    from PIL import Image

    source = to_yolo(synthetic_root, tmp_path / "yolo")
    labels = sorted((tmp_path / "yolo/labels/train").glob("*.txt"))[0]
    image = next((tmp_path / "yolo/images/train").glob(labels.stem + ".*"))
    width = Image.open(image).size[0]
    over = 1 + 1.5 / width  # 1.5 px past the right edge: clipped
    far = 1 + 4 / width  # 4 px: a bad label
    labels.write_text(labels.read_text() + f"0 0.5 0.5 {over} 0.5 {over} 0.9 0.5 0.9\n")
    report = convert_yolo(source, tmp_path / "coco")
    assert report.clipped == 1 and "(1 clipped to the image)" in report.summary()
    coco = json.loads((tmp_path / "coco/annotations/train.json").read_text())
    (image_id,) = [i["id"] for i in coco["images"] if i["file_name"].endswith(image.name)]
    mine = [a for a in coco["annotations"] if a["image_id"] == image_id]
    assert max(max(a["segmentation"][0][0::2]) for a in mine) == width  # clipped to the edge
    labels.write_text(labels.read_text() + f"0 0.5 0.5 {far} 0.5 {far} 0.9 0.5 0.9\n")
    with pytest.raises(ConversionFailed) as failed:
        convert_yolo(source, tmp_path / "coco2")
    assert "outside [0, 1] by 4.0 px" in failed.value.report.problems[0]
