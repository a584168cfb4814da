import hashlib
import json

import pytest
from PIL import Image

from cardd.core.errors import CarddError
from cardd.data.check import check_dataset
from cardd.data.synth import synthesize
from cardd.structures.classes import CATEGORIES, CLASSES, SPLITS


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_schema_and_all_classes_in_every_split(synthetic_root):
    for split in SPLITS:
        coco = json.loads((synthetic_root / f"annotations/instances_{split}2017.json").read_text())
        assert coco["categories"] == CATEGORIES
        assert {a["category_id"] for a in coco["annotations"]} == {1, 2, 3, 4, 5, 6}
        for image in coco["images"]:
            assert set(image) == {"id", "file_name", "height", "width"}
            with Image.open(synthetic_root / f"{split}2017" / image["file_name"]) as img:
                assert img.format == "JPEG"
                assert img.size == (image["width"], image["height"])
        for ann in coco["annotations"]:
            assert set(ann) == {
                "id",
                "image_id",
                "category_id",
                "segmentation",
                "area",
                "bbox",
                "iscrowd",
                "attributes",
            }
            assert ann["attributes"] == {"occluded": False}
            assert len(ann["segmentation"][0]) >= 6 and ann["area"] > 0


def test_synthetic_data_passes_the_deep_check(synthetic_root):
    report = check_dataset(synthetic_root, deep=True)
    assert report.ok, report.problem_lines()
    assert set(report.splits) == set(SPLITS)
    assert all(set(stats.instances) == set(CLASSES) for stats in report.splits.values())


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    synthesize(tmp_path / "a", images=6, seed=3)
    synthesize(tmp_path / "b", images=6, seed=3)
    synthesize(tmp_path / "c", images=6, seed=4)
    a, b, c = (_digest(tmp_path / n / "CarDD_COCO") for n in "abc")
    assert a == b != c


def test_refuses_to_overwrite_without_force(tmp_path):
    synthesize(tmp_path, images=6)
    before = _digest(tmp_path / "CarDD_COCO")
    with pytest.raises(CarddError, match="already exists"):
        synthesize(tmp_path, images=6, seed=1)
    assert _digest(tmp_path / "CarDD_COCO") == before
    synthesize(tmp_path, images=6, seed=1, force=True)
    assert _digest(tmp_path / "CarDD_COCO") != before
    assert [p.name for p in tmp_path.iterdir()] == ["CarDD_COCO"]  # no staging left


def test_too_few_images_is_an_error(tmp_path):
    with pytest.raises(CarddError, match="at least 6"):
        synthesize(tmp_path, images=5)
    assert not (tmp_path / "CarDD_COCO").exists()


def test_fixed_size_for_loading_benchmarks(tmp_path):
    synthesize(tmp_path, images=6, size=(640, 480))
    coco = json.loads((tmp_path / "CarDD_COCO/annotations/instances_train2017.json").read_text())
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(640, 480)}
    assert check_dataset(tmp_path / "CarDD_COCO", deep=True).ok


def test_parts_mode_annotates_the_cars_parts_and_only_draws_the_damage(tmp_path):
    import json

    from cardd.data.synth import PART_CATEGORIES

    summary = synthesize(tmp_path / "a", images=6, seed=1, parts=True)
    again = synthesize(tmp_path / "b", images=6, seed=1, parts=True)
    assert summary == again
    for split in ("train", "val", "test"):
        path = f"CarDD_COCO/annotations/instances_{split}2017.json"
        coco = json.loads((tmp_path / "a" / path).read_text())
        assert coco["categories"] == PART_CATEGORIES
        per_image = {}
        for annotation in coco["annotations"]:
            per_image.setdefault(annotation["image_id"], []).append(annotation["category_id"])
        assert all(sorted(ids) == [1, 2, 3, 4] for ids in per_image.values())  # one of each part
        assert len(per_image) == len(coco["images"])
        assert (tmp_path / "b" / path).read_bytes() == (tmp_path / "a" / path).read_bytes()
