import hashlib
import os

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.download import partial_path
from cardd.core.errors import CarddError
from cardd.models.families import START_POINTS, start_point
from cardd.models.pretrained import download_weights, expected_hash_prefix
from tests.support.http_server import FileServer

WEIGHTS = os.urandom(2 * 1024 * 1024)
PREFIX = hashlib.sha256(WEIGHTS).hexdigest()[:8]
GOOD = f"/dcn/model_20200216-{PREFIX}.pth"
BAD = "/dcn/model_20200216-00000000.pth"


@pytest.fixture
def server():
    with FileServer() as s:
        s.files[GOOD] = WEIGHTS
        s.files[BAD] = WEIGHTS
        yield s


def test_hash_prefix_from_openmmlab_names():
    assert expected_hash_prefix(start_point("dcn-plus").filename) == "a71f5bce"
    assert expected_hash_prefix(start_point("rtmdet-ins-s").filename) == "fdc5d7ec"
    assert expected_hash_prefix("model.pth") is None


def test_verified_download_and_existing_file_kept(server, tmp_path):
    path = download_weights(tmp_path, url=server.base_url + GOOD, progress=False)
    assert path.read_bytes() == WEIGHTS
    server.requests.clear()
    again = download_weights(tmp_path, url=server.base_url + GOOD, progress=False)
    assert again == path and server.requests == []  # valid file kept, nothing fetched


def test_resumes_partial_download(server, tmp_path):
    target = tmp_path / GOOD.rsplit("/", 1)[1]
    partial_path(target).write_bytes(WEIGHTS[:5000])
    download_weights(tmp_path, url=server.base_url + GOOD, progress=False)
    assert target.read_bytes() == WEIGHTS
    assert server.requests[0][1] == "bytes=5000-"


def test_checksum_mismatch_deletes_partial_and_names_both_hashes(server, tmp_path):
    with pytest.raises(CarddError) as error:
        download_weights(tmp_path, url=server.base_url + BAD, progress=False)
    message = str(error.value)
    assert "00000000" in message and hashlib.sha256(WEIGHTS).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_corrupted_existing_file_is_replaced(server, tmp_path):
    target = tmp_path / GOOD.rsplit("/", 1)[1]
    target.write_bytes(b"garbage")
    download_weights(tmp_path, url=server.base_url + GOOD, progress=False)
    assert target.read_bytes() == WEIGHTS


def test_cli_exit_codes(server, tmp_path):
    ok = CliRunner().invoke(
        cli, ["download-weights", "--dest", str(tmp_path), "--url", server.base_url + GOOD]
    )
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(
        cli, ["download-weights", "--dest", str(tmp_path), "--url", server.base_url + BAD]
    )
    assert bad.exit_code == 1 and "checksum mismatch" in bad.output
    assert "Traceback" not in bad.output


def test_each_config_starts_from_its_families_weights():
    """The table `download-weights --model` reads and the configs' `load_from` name the
    same files, and every name carries a sha256 prefix to check it by."""
    from pathlib import Path

    from cardd.models.configs import load_config

    for point in START_POINTS:
        assert Path(load_config(point.config).load_from).name == point.filename, point.model
        assert expected_hash_prefix(point.filename) is not None


def test_model_option_fetches_that_models_weights(server, tmp_path, monkeypatch):
    """`--model rtmdet-ins-s` fetches RTMDet-Ins-s's file, by its name, from its address
    (here the test server's, in place of download.openmmlab.com), checked by its hash."""
    import dataclasses

    from cardd.models import families

    name = f"rtmdet-ins_s_8xb32-300e_coco_20221121_212604-{PREFIX}.pth"
    server.files[f"/rtmdet/{name}"] = WEIGHTS
    points = tuple(
        dataclasses.replace(p, url=f"{server.base_url}/rtmdet/{name}") if p.model == "rtmdet-ins-s"
        else p for p in families.START_POINTS)  # fmt: skip
    monkeypatch.setattr(families, "START_POINTS", points)
    done = CliRunner().invoke(cli, ["download-weights", "--model", "rtmdet-ins-s",
                                    "--dest", str(tmp_path)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (tmp_path / name).read_bytes() == WEIGHTS
    wrong = CliRunner().invoke(cli, ["download-weights", "--model", "yolo"])
    assert wrong.exit_code == 2 and "dcn-plus" in wrong.output
