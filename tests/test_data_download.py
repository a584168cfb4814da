import hashlib
import os
import stat
import zipfile

import pytest
from click.testing import CliRunner

from cardd.cli import cli
from cardd.data.download import download_data
from cardd.data.extract import extract_release
from cardd.errors import CarddError
from tests.http_server import FileServer


def _snapshot(folder):
    """Every path under `folder` with its content hash: "exactly as it was"."""
    if not folder.exists():
        return None
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(folder.rglob("*"))
    }


def _release_zip(path, dataset_root, prefix="CarDD_release/", extra=()):
    """Zip a CarDD_COCO folder the way the release does (plus a CarDD_SOD entry)."""
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(dataset_root.rglob("*")):
            if file.is_file():
                zf.write(file, prefix + "CarDD_COCO/" + file.relative_to(dataset_root).as_posix())
        zf.writestr(prefix + "CarDD_SOD/CarDD-TR/CarDD-TR-Image/000001.jpg", b"sod")
        for name, data in extra:
            zf.writestr(name, data)
    return path


@pytest.fixture
def release_zip(tmp_path, synthetic_root):
    return _release_zip(tmp_path / "CarDD_release.zip", synthetic_root)


def test_zip_is_extracted_and_checked(release_zip, tmp_path, synthetic_root):
    report = download_data(dest=tmp_path / "data", zip_path=release_zip)
    assert report.ok
    out = tmp_path / "data" / "CarDD_COCO"
    assert _snapshot(out) == _snapshot(synthetic_root)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "CarDD_COCO"
    ]  # no SOD, no staging


def test_double_nested_release_and_keep_sod(tmp_path, synthetic_root):
    nested = _release_zip(
        tmp_path / "nested.zip", synthetic_root, prefix="CarDD_release/CarDD_release/"
    )
    download_data(dest=tmp_path / "data", zip_path=nested, keep_sod=True)
    assert (tmp_path / "data/CarDD_COCO/annotations/instances_train2017.json").is_file()
    assert (tmp_path / "data/CarDD_SOD/CarDD-TR/CarDD-TR-Image/000001.jpg").is_file()


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs/evil.txt", "CarDD_release/../../evil.txt"])
def test_zip_slip_is_refused_and_nothing_written(tmp_path, synthetic_root, entry):
    bad = _release_zip(tmp_path / "bad.zip", synthetic_root, extra=[(entry, b"x")])
    dest = tmp_path / "out" / "data"
    with pytest.raises(CarddError, match="unsafe zip"):
        extract_release(bad, dest)
    assert not (tmp_path / "out").exists() or _snapshot(tmp_path / "out") == {}
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path, synthetic_root):
    path = _release_zip(tmp_path / "link.zip", synthetic_root)
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
    before = _snapshot(dest)

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
        assert _snapshot(dest) == before, broken.name


def test_existing_dataset_is_kept_unless_force(tmp_path, release_zip):
    dest = tmp_path / "data"
    (dest / "CarDD_COCO").mkdir(parents=True)
    (dest / "CarDD_COCO" / "mine.txt").write_text("mine")
    result = CliRunner().invoke(
        cli, ["download-data", "--zip", str(release_zip), "--dest", str(dest)]
    )
    assert "already in place" in result.output
    assert (dest / "CarDD_COCO" / "mine.txt").read_text() == "mine"
    result = CliRunner().invoke(
        cli, ["download-data", "--zip", str(release_zip), "--dest", str(dest), "--force"]
    )
    assert result.exit_code == 0, result.output
    assert not (dest / "CarDD_COCO" / "mine.txt").exists()
    assert (dest / "CarDD_COCO" / "annotations").is_dir()
    assert sorted(p.name for p in dest.iterdir()) == ["CarDD_COCO"]


def test_mirror_url_download_resumes_then_extracts(tmp_path, release_zip, monkeypatch):
    monkeypatch.setenv("CARDD_CACHE", str(tmp_path / "cache"))
    with FileServer() as server:
        server.files["/CarDD_release.zip"] = release_zip.read_bytes()
        server.drop_after["/CarDD_release.zip"] = 150_000
        report = download_data(dest=tmp_path / "data", url=server.base_url + "/CarDD_release.zip")
    assert report.ok
    first, second = (r for _, r in server.requests)
    assert first is None and 0 < int(second[6:-1]) <= 150_000  # resumed, not restarted
    assert (tmp_path / "cache/downloads/CarDD_release.zip").read_bytes() == release_zip.read_bytes()


def test_zip_and_url_together_is_a_usage_error(tmp_path, release_zip):
    result = CliRunner().invoke(
        cli,
        ["download-data", "--zip", str(release_zip), "--url", "http://x", "--dest", str(tmp_path)],
    )
    assert result.exit_code == 2


def test_source_zip_is_not_modified(tmp_path, release_zip):
    digest = hashlib.sha256(release_zip.read_bytes()).hexdigest()
    mtime = os.stat(release_zip).st_mtime_ns
    download_data(dest=tmp_path / "data", zip_path=release_zip)
    assert hashlib.sha256(release_zip.read_bytes()).hexdigest() == digest
    assert os.stat(release_zip).st_mtime_ns == mtime


def test_full_disk_is_refused_before_writing(tmp_path, release_zip, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(CarddError, match="not enough disk space"):
        extract_release(release_zip, tmp_path / "data")
    assert not (tmp_path / "data").exists()
