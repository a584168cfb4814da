"""`cardd download-data`: sources (zip, mirror URL), dataset in place, check at the end."""

import hashlib
import os

from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.data.download import download_data
from tests.support.http_server import FileServer
from tests.support.zips import snapshot


def test_zip_is_extracted_and_checked(release_zip, tmp_path, synthetic_root):
    report = download_data(dest=tmp_path / "data", zip_path=release_zip)
    assert report.ok
    out = tmp_path / "data" / "CarDD_COCO"
    assert snapshot(out) == snapshot(synthetic_root)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "CarDD_COCO"
    ]  # no SOD, no staging


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


def test_force_re_extracts_the_cached_zip_and_redownload_fetches_it(
    tmp_path, release_zip, monkeypatch
):
    monkeypatch.setenv("CARDD_CACHE", str(tmp_path / "cache"))
    dest = tmp_path / "data"
    with FileServer() as server:
        server.files["/CarDD_release.zip"] = release_zip.read_bytes()
        url = server.base_url + "/CarDD_release.zip"
        assert download_data(dest=dest, url=url).ok
        (dest / "CarDD_COCO" / "mine.txt").write_text("stale")
        assert download_data(dest=dest, url=url, force=True).ok  # as its message says:
        assert len(server.requests) == 1  # re-extracted, not downloaded again
        assert not (dest / "CarDD_COCO" / "mine.txt").exists()
        assert download_data(dest=dest, url=url, redownload=True).ok
        assert len(server.requests) == 2
