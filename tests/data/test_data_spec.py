"""Dataset description files: splits relative to the file, missing splits said so."""

import json

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.data.spec import cardd_layout, load_data_file, resolve_dataset
from tests.support.datasets import categories, relabel


def test_paths_are_relative_to_the_file_and_its_path_key(tmp_path):
    folder = tmp_path / "somewhere"
    folder.mkdir()
    data = folder / "data.yaml"
    data.write_text("path: ../claims\ntrain:\n  annotations: a/train.json\n  images: img/train\n")
    spec = load_data_file(data)
    assert list(spec.splits) == ["train"]
    assert spec.splits["train"].annotations == folder / "../claims/a/train.json"
    assert spec.splits["train"].images == folder / "../claims/img/train"
    with pytest.raises(CarddError, match=r"has no test split \(it has: train\)"):
        spec.split("test")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: [1, 2", "is not valid YAML"),
        ("- a\n- b\n", "got no mapping"),
        ("trian: {annotations: a, images: b}\n", "unknown key 'trian'"),
        ("train: {annotations: a}\n", "train has no 'images'"),
        ("train: {annotations: a, images: b, masks: c}\n", "unknown key 'masks'"),
        ("val: {annotations: a, images: b}\n", "no train split"),
        ("train: {annotations: 3, images: b}\n", "must be a path"),
    ],
)
def test_bad_description_files_are_one_line(tmp_path, text, message):
    data = tmp_path / "data.yaml"
    data.write_text(text)
    with pytest.raises(CarddError, match=message):
        load_data_file(data)


def test_classes_come_from_the_annotations_and_must_agree_across_splits(synthetic_root, tmp_path):
    data = relabel(synthetic_root, tmp_path / "d", categories(["paint chip", "dent"], [0, 9]))
    spec = load_data_file(data)
    assert spec.classes().names == ("paint chip", "dent") and spec.classes().ids == (0, 9)
    val = tmp_path / "d/annotations/val.json"
    coco = json.loads(val.read_text())
    coco["categories"] = coco["categories"][::-1]
    val.write_text(json.dumps(coco))
    with pytest.raises(CarddError, match="the val split lists other categories than the train"):
        load_data_file(data).classes()


def test_cardd_layout_and_the_choice_between_data_and_data_root(synthetic_root, tmp_path):
    assert list(cardd_layout(synthetic_root).splits) == ["train", "val", "test"]
    with pytest.raises(CarddError, match="no dataset at"):
        cardd_layout(tmp_path)
    with pytest.raises(CarddError, match="is a folder: --data takes a description file"):
        resolve_dataset(tmp_path, None, synthetic_root)
    with pytest.raises(CarddError, match="pass one"):
        resolve_dataset(tmp_path / "x.yaml", synthetic_root, synthetic_root)


def test_check_data_takes_a_description_and_any_classes(synthetic_root, tmp_path):
    names = [f"part {k}" for k in range(25)]
    data = relabel(synthetic_root, tmp_path / "d", categories(names, list(range(1, 50, 2))))
    result = CliRunner().invoke(cli, ["check-data", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "part 24" in result.output and "ok" in result.output
    val = tmp_path / "d/annotations/val.json"
    coco = json.loads(val.read_text())
    coco["annotations"][0]["category_id"] = 2  # not among the odd ids
    coco["categories"] = coco["categories"][:-1]
    val.write_text(json.dumps(coco))
    result = CliRunner().invoke(cli, ["check-data", "--data", str(data)])
    assert result.exit_code == 1
    assert "wrong categories: 1" in result.output and "bad category: 1" in result.output


@pytest.mark.parametrize(
    ("name", "message"),
    [(5, "file_name 5 is not a file name"),
     ("../../x.jpg", "file_name '../../x.jpg' leads outside the image folder")],
)  # fmt: skip
def test_file_names_that_could_leave_the_image_folder_are_one_line(synthetic_root, tmp_path,
                                                                    name, message):  # fmt: skip
    """mmdet's loader joins `file_name` to the image folder: `5` was a TypeError, `../..`
    a read outside. Every command that reads a dataset's classes refuses them first."""
    import shutil

    root = tmp_path / "CarDD_COCO"
    shutil.copytree(synthetic_root, root)
    ann = root / "annotations" / "instances_val2017.json"
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = name
    ann.write_text(json.dumps(coco))
    with pytest.raises(CarddError, match=message.replace("(", r"\(").replace(".", r"\.")):
        cardd_layout(root).classes()
    results = tmp_path / "results.json"
    results.write_text("[]")
    result = CliRunner().invoke(
        cli, ["eval", "--results", str(results), "--ann", str(ann), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "e").exists()
