"""Safe extraction of the release zip: zip-slip, links, nesting, corruption, full disk."""

import shutil
import stat
import zipfile

import pytest

from cardd.core.errors import CarddError
from cardd.data.download import download_data
from cardd.data.extract import extract_release
from tests.support.zips import release_zip_of, snapshot


def test_double_nested_release_and_keep_sod(tmp_path, synthetic_root):
    nested = release_zip_of(
        tmp_path / "nested.zip", synthetic_root, prefix="CarDD_release/CarDD_release/"
    )
    download_data(dest=tmp_path / "data", zip_path=nested, keep_sod=True)
    assert (tmp_path / "data/CarDD_COCO/annotations/instances_train2017.json").is_file()
    assert (tmp_path / "data/CarDD_SOD/CarDD-TR/CarDD-TR-Image/000001.jpg").is_file()


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs/evil.txt", "CarDD_release/../../evil.txt"])
def test_zip_slip_is_refused_and_nothing_written(tmp_path, synthetic_root, entry):
    bad = release_zip_of(tmp_path / "bad.zip", synthetic_root, extra=[(entry, b"x")])
    dest = tmp_path / "out" / "data"
    with pytest.raises(CarddError, match="unsafe zip"):
        extract_release(bad, dest)
    assert not (tmp_path / "out").exists() or snapshot(tmp_path / "out") == {}
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path, synthetic_root):
    path = release_zip_of(tmp_path / "link.zip", synthetic_root)
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("CarDD_release/CarDD_COCO/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(CarddError, match="symbolic link"):
        extract_release(path, tmp_path / "data")


def test_corrupt_and_foreign_zips_leave_dest_as_it_was(tmp_path, release_zip, synthetic_root):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "keep.txt").write_text("user file")
    before = snapshot(dest)

    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(release_zip.read_bytes()[: release_zip.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.zip"  # intact directory, damaged file data
    data = bytearray(release_zip.read_bytes())
    for offset in range(200, len(data) // 2, 997):
        data[offset] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("photos/1.jpg", b"x")
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")

    for broken in (truncated, corrupt, foreign, not_zip):
        with pytest.raises(CarddError):
            extract_release(broken, dest)
        assert snapshot(dest) == before, broken.name


def test_full_disk_is_refused_before_writing(tmp_path, release_zip, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(CarddError, match="not enough disk space"):
        extract_release(release_zip, tmp_path / "data")
    assert not (tmp_path / "data").exists()
