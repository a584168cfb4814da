import pytest

from cardd.core.errors import CarddError
from cardd.data.layout import staged_folder


def test_target_appears_only_when_complete(tmp_path):
    target = tmp_path / "data" / "CarDD_COCO"
    with staged_folder(target) as staging:
        (staging / "annotations").mkdir()
        assert not target.exists()
    assert (target / "annotations").is_dir()
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["CarDD_COCO"]


def test_failure_leaves_everything_as_it_was(tmp_path):
    target = tmp_path / "data" / "CarDD_COCO"
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "half.json").write_text("{")
        raise RuntimeError("interrupted")
    assert not (tmp_path / "data").exists()  # not even the parent this created


def test_existing_target_needs_force_and_is_replaced_whole(tmp_path):
    target = tmp_path / "CarDD_COCO"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(CarddError, match="--force"), staged_folder(target):
        pass
    with pytest.raises(RuntimeError), staged_folder(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert (target / "old.txt").read_text() == "old"  # a failed --force keeps the old one
    with staged_folder(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CarDD_COCO"]
