import json

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.data.check import check_dataset


def _edit(root, split, change):
    path = root / f"annotations/instances_{split}2017.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def test_clean_dataset_exits_zero_with_table(synthetic_root):
    result = CliRunner().invoke(cli, ["check-data", "--root", str(synthetic_root)])
    assert result.exit_code == 0, result.output
    assert "glass shatter" in result.output and "ok" in result.output


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("bad bbox", lambda c: c["annotations"][0].update(bbox=[10, 10, 0, 5])),
        ("bad bbox", lambda c: c["annotations"][0].update(bbox=[300, 200, 500, 400])),
        ("bad category", lambda c: c["annotations"][0].update(category_id=7)),
        ("bad polygon", lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3]])),
        ("annotation of unknown image", lambda c: c["annotations"][0].update(image_id=999)),
        ("duplicate id", lambda c: c["annotations"][1].update(id=c["annotations"][0]["id"])),
        ("wrong categories", lambda c: c["categories"][3].update(name="glass_shatter")),
        ("wrong categories", lambda c: c.update(categories=c["categories"][::-1])),
    ],
)
def test_planted_fault_is_found(dataset_copy, kind, change):
    root = dataset_copy / "CarDD_COCO"
    _edit(root, "train", change)
    report = check_dataset(root)
    assert not report.ok
    assert report.problems[kind], report.problem_lines()


def test_missing_image_and_size_mismatch(dataset_copy):
    root = dataset_copy / "CarDD_COCO"
    coco = json.loads((root / "annotations/instances_val2017.json").read_text())
    (root / "val2017" / coco["images"][0]["file_name"]).unlink()
    _edit(root, "test", lambda c: c["images"][0].update(width=999))
    shallow = check_dataset(root)
    assert len(shallow.problems["missing image"]) == 1
    assert not shallow.problems["image size mismatch"]  # only --deep decodes images
    deep = check_dataset(root, deep=True)
    assert len(deep.problems["image size mismatch"]) == 1


def test_cli_lists_problems_with_counts_and_exits_one(dataset_copy):
    root = dataset_copy / "CarDD_COCO"
    _edit(root, "train", lambda c: [a.update(category_id=0) for a in c["annotations"]])
    result = CliRunner().invoke(cli, ["check-data", "--root", str(root)])
    assert result.exit_code == 1
    count = len(
        json.loads((root / "annotations/instances_train2017.json").read_text())["annotations"]
    )
    assert f"bad category: {count}" in result.output
    assert f"... and {count - 5} more" in result.output
    assert "Traceback" not in result.output


def test_not_a_dataset(tmp_path):
    result = CliRunner().invoke(cli, ["check-data", "--root", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "does not exist" in result.output
    result = CliRunner().invoke(cli, ["check-data", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "no annotations/ folder" in result.output


def test_reordered_categories_are_named_as_such(dataset_copy):
    root = dataset_copy / "CarDD_COCO"
    _edit(root, "val", lambda c: c["categories"].insert(0, c["categories"].pop(2)))
    report = check_dataset(root)
    assert any("another order" in m for m in report.problems["wrong categories"])
