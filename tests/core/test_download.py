import os

import pytest

from cardd.core.download import download, partial_path
from cardd.core.errors import CarddError
from tests.support.http_server import FileServer

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def server():
    with FileServer() as s:
        s.files["/file.bin"] = PAYLOAD
        yield s


def test_plain_download_lands_whole(server, tmp_path):
    target = download(f"{server.base_url}/file.bin", tmp_path / "file.bin", progress=False)
    assert target.read_bytes() == PAYLOAD
    assert not partial_path(target).exists()


def test_dropped_connection_is_retried_and_resumed_with_range(server, tmp_path):
    server.drop_after["/file.bin"] = 1_000_000
    target = download(
        f"{server.base_url}/file.bin", tmp_path / "file.bin", progress=False, backoff=0.01
    )
    assert target.read_bytes() == PAYLOAD
    assert server.requests[0][1] is None
    assert 0 < int(server.requests[1][1][6:-1]) <= 1_000_000  # resumed, not restarted


def test_rerun_resumes_a_partial_file(server, tmp_path):
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(PAYLOAD[:12345])
    download(f"{server.base_url}/file.bin", target, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == [("/file.bin", "bytes=12345-")]


def test_complete_partial_file_is_accepted(server, tmp_path):
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(PAYLOAD)
    download(f"{server.base_url}/file.bin", target, progress=False)
    assert target.read_bytes() == PAYLOAD


def test_missing_file_and_unreachable_host(server, tmp_path):
    with pytest.raises(CarddError, match="404"):
        download(f"{server.base_url}/nope.bin", tmp_path / "x", progress=False)
    port = server.httpd.server_address[1]
    server.httpd.server_close()  # nothing listens on the port any more
    with pytest.raises(CarddError, match="refused|failed"):
        download(
            f"http://127.0.0.1:{port}/file.bin",
            tmp_path / "y",
            progress=False,
            retries=1,
            backoff=0.01,
        )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_rejected_file_never_lands(server, tmp_path):
    def reject(path):
        raise CarddError("bad file")

    with pytest.raises(CarddError, match="bad file"):
        download(
            f"{server.base_url}/file.bin", tmp_path / "file.bin", progress=False, verify=reject
        )
    assert list(tmp_path.iterdir()) == []
