"""`download-data --dataset carparts`: a Carparts-Seg-shaped zip from a local server."""

import json
import zipfile

from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.data.carparts import CARPARTS_NAMES
from cardd.data.check import check_spec
from cardd.data.spec import load_data_file
from tests.support.datasets import to_yolo
from tests.support.http_server import FileServer


def _carparts_zip(synthetic_root, tmp_path, extra=None):
    """The synthetic data in Carparts-Seg's layout (carparts-seg/{train,valid,test}/...)."""
    yolo = tmp_path / "yolo"
    to_yolo(synthetic_root, yolo, roboflow=True)
    path = tmp_path / "carparts-seg.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(yolo.rglob("*")):
            if file.is_file() and file.name != "data.yaml":
                archive.write(file, f"carparts-seg/{file.relative_to(yolo)}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def test_download_extract_and_convert(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CARDD_CACHE", str(tmp_path / "cache"))
    zipped = _carparts_zip(synthetic_root, tmp_path)
    dest = tmp_path / "data"
    with FileServer() as server:
        server.files["/carparts-seg.zip"] = zipped.read_bytes()
        result = CliRunner().invoke(
            cli,
            ["download-data", "--dataset", "carparts", "--dest", str(dest),
             "--url", server.base_url + "/carparts-seg.zip"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache/downloads/carparts-seg.zip").read_bytes() == zipped.read_bytes()
    spec = load_data_file(dest / "carparts/data.yaml")
    assert spec.classes().names == CARPARTS_NAMES and spec.classes().ids == tuple(range(23))
    assert list(spec.splits) == ["train", "val", "test"] and check_spec(spec).ok
    train = json.loads(spec.split("train").annotations.read_text())
    assert len(train["images"]) == 8 and train["annotations"]
    assert f"cardd train --data {dest / 'carparts/data.yaml'}" in result.output
    again = CliRunner().invoke(cli, ["download-data", "--dataset", "carparts", "--dest", str(dest)])
    assert again.exit_code == 1 and "already exists; pass --force" in again.output


def test_an_escaping_zip_is_refused_and_nothing_lands(synthetic_root, tmp_path):
    zipped = _carparts_zip(synthetic_root, tmp_path, {"carparts-seg/../../evil.txt": "x"})
    dest = tmp_path / "data"
    result = CliRunner().invoke(
        cli, ["download-data", "--dataset", "carparts", "--dest", str(dest), "--zip", str(zipped)]
    )
    assert result.exit_code == 1 and "climbs out with '..'" in result.output
    assert not (dest / "carparts-seg").exists() and not (dest / "carparts").exists()
    assert not (tmp_path / "evil.txt").exists()
