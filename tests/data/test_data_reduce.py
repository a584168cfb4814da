import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.data.check import check_dataset
from cardd.data.reduce import keeps, reduce_dataset
from cardd.structures.classes import SPLITS


def _tree_digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_keep_rule_reproduces_the_original_subset():
    assert keeps("000010.jpg", 10) and keeps("1230.jpg", 10)
    assert not keeps("000011.jpg", 10) and not keeps("car.jpg", 10)
    assert keeps("000004.jpg", 2) and not keeps("000005.jpg", 2)


def test_reduced_json_is_consistent_and_source_unchanged(synthetic_data, tmp_path):
    before = _tree_digest(synthetic_data)
    summary = reduce_dataset(synthetic_data, tmp_path / "small", every=2)
    assert _tree_digest(synthetic_data) == before
    out = tmp_path / "small" / "CarDD_COCO"
    for split in SPLITS:
        src = json.loads(
            (synthetic_data / f"CarDD_COCO/annotations/instances_{split}2017.json").read_text()
        )
        dst = json.loads((out / f"annotations/instances_{split}2017.json").read_text())
        kept = {i["id"] for i in dst["images"]}
        assert kept == {i["id"] for i in src["images"] if keeps(i["file_name"], 2)}
        assert all(a["image_id"] in kept for a in dst["annotations"])
        assert dst["annotations"] == [a for a in src["annotations"] if a["image_id"] in kept]
        assert dst["categories"] == src["categories"]
        assert summary[split][0] == len(kept)
        assert sum(summary[split][1].values()) == len(dst["annotations"])
        for image in dst["images"]:  # hard links, not copies, on one filesystem
            linked = out / f"{split}2017" / image["file_name"]
            assert os.stat(linked).st_nlink >= 2
    assert check_dataset(out).ok


def test_refuses_to_overwrite_and_rejects_bad_input(synthetic_data, tmp_path):
    reduce_dataset(synthetic_data, tmp_path, every=2)
    with pytest.raises(CarddError, match="already exists"):
        reduce_dataset(synthetic_data, tmp_path, every=3)
    reduce_dataset(synthetic_data, tmp_path, every=3, force=True)
    with pytest.raises(CarddError, match="cardd download-data"):
        reduce_dataset(tmp_path / "missing", tmp_path / "x")


def test_cli_prints_kept_counts(synthetic_data, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["reduce-data", "--src", str(synthetic_data), "--dst", str(tmp_path / "s"), "--every", "3"],
    )
    assert result.exit_code == 0, result.output
    assert "kept in" in result.output and "train" in result.output
    result = CliRunner().invoke(
        cli, ["reduce-data", "--src", str(synthetic_data), "--dst", str(tmp_path / "s")]
    )
    assert result.exit_code == 1 and "--force" in result.output


@pytest.mark.parametrize(
    "name", ["../../secret0.jpg", "/etc/passwd0", "sub\\..\\..\\x0.jpg", "C:/x0.jpg"]
)
def test_file_names_that_lead_elsewhere_are_refused(dataset_copy, tmp_path, name):
    """A `file_name` of `../../secret0.jpg` would link a file from outside the dataset
    into the subset (and a crafted one could write outside it)."""
    outside = dataset_copy / "secret0.jpg"
    outside.write_bytes(b"not part of the dataset")
    ann = dataset_copy / "CarDD_COCO/annotations/instances_train2017.json"
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = name
    ann.write_text(json.dumps(coco))
    with pytest.raises(CarddError, match="nothing was written"):
        reduce_dataset(dataset_copy, tmp_path / "small", every=1)
    assert not (tmp_path / "small").exists()
    report = check_dataset(dataset_copy / "CarDD_COCO")
    assert not report.ok and any("unsafe file name" in line for line in report.problem_lines())
