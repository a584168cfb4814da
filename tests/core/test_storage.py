"""Photos and results in object storage (`cardd.core.storage`): every command that reads or
writes them, against a real S3 server (moto's, a process of its own) and a local
HTTP server, in fresh `cardd` processes configured by the usual AWS variables."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from cardd.core import storage
from cardd.core.errors import CarddError
from tests.conftest import read_json, run_cardd
from tests.support import s3_server
from tests.support.http_server import FileServer

pytest.importorskip("s3fs", reason="the object-storage tests need the s3 extra")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint, s3fs filesystem) of a moto server with the bucket `photos` holding
    `claims/` (the synthetic test and val photos) and an empty bucket `results`."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with s3_server.moto_server(log) as endpoint:
        yield endpoint, s3_server.filesystem(endpoint)


@pytest.fixture(scope="module")
def claims(synthetic_root, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("claims_local") / "claims"
    folder.mkdir()
    for split in ("val2017", "test2017"):
        for image in sorted((synthetic_root / split).glob("*.jpg")):
            shutil.copy(image, folder / f"{split}_{image.name}")
    return folder


@pytest.fixture(scope="module")
def bucket(s3, claims):
    endpoint, fs = s3
    fs.mkdir("photos")
    fs.mkdir("results")
    for image in sorted(claims.iterdir()):
        fs.pipe_file(f"photos/claims/{image.name}", image.read_bytes())
    return endpoint, fs


def _cardd(endpoint: str, *args, cwd=None, **env):
    return run_cardd(*args, env={**s3_server.environment(endpoint), **env}, cwd=cwd)


def _text(data: bytes) -> str:
    return data.decode("utf-8")


def test_infer_reads_and_writes_s3_as_it_does_folders(bucket, claims, tiny_export, tmp_path):
    endpoint, fs = bucket
    local = tmp_path / "local"
    done = run_cardd("infer", claims.name, "--checkpoint", tiny_export, "--out-dir", local,
                     "--score-thr", "0.05", cwd=claims.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    remote = _cardd(endpoint, "infer", "s3://photos/claims/", "--checkpoint", tiny_export,
                    "--out-dir", "s3://results/run1/", "--score-thr", "0.05")  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    assert "-> s3://results/run1/" in remote.stdout
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    stored = {name.removeprefix("results/run1/") for name in fs.find("results/run1")}
    assert stored == files  # the same names: preds/, vis/, thumbs/, CSV, summary, index, log
    assert not any(".part" in name or "probe" in name for name in stored)
    for name in sorted(files - {"summary.json", "infer.log", "options.json"}):
        mine, theirs = (local / name).read_bytes(), fs.cat_file(f"results/run1/{name}")
        if name.endswith((".json", ".csv", ".html")):  # they name their images' sources
            mine, theirs = _text(mine), _text(theirs).replace("s3://photos/claims/", "claims/")
        assert mine == theirs, name
    summary = json.loads(fs.cat_file("results/run1/summary.json"))
    assert summary["images_processed"] == 4 and summary["images_failed"] == 0

    # a second run into the same URL is refused, then resumed: only what is missing is run
    again = _cardd(endpoint, "infer", "s3://photos/claims/", "--checkpoint", tiny_export,
                   "--out-dir", "s3://results/run1/")  # fmt: skip
    assert again.returncode == 2 and "not empty" in again.stderr
    fs.rm("results/run1/preds/claims/test2017_000012.jpg.json")
    resumed = _cardd(endpoint, "infer", "s3://photos/claims/", "--checkpoint", tiny_export,
                     "--out-dir", "s3://results/run1/", "--score-thr", "0.05",
                     "--resume")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(fs.cat_file("results/run1/summary.json"))["images_resumed"] == 3
    assert fs.cat_file("results/run1/predictions.csv").decode().replace(
        "s3://photos/claims/", "claims/"
    ) == (local / "predictions.csv").read_bytes().decode()


def test_missing_bucket_and_key_are_one_line_each(bucket, tiny_export, tmp_path):
    endpoint, _ = bucket
    missing_input = _cardd(endpoint, "infer", "s3://no-such-bucket/claims/", "--checkpoint",
                           tiny_export, "--out-dir", tmp_path / "a")  # fmt: skip
    assert missing_input.returncode == 2
    assert "s3://no-such-bucket/claims/ does not exist" in missing_input.stderr
    started = time.monotonic()
    missing_output = _cardd(endpoint, "infer", "s3://photos/claims/", "--checkpoint",
                            tiny_export, "--out-dir", "s3://no-such-bucket/out/")  # fmt: skip
    assert missing_output.returncode == 1
    assert "s3://no-such-bucket/out/" in missing_output.stderr
    assert "not found" in missing_output.stderr
    assert "Traceback" not in missing_output.stderr + missing_input.stderr
    assert time.monotonic() - started < 60  # refused before the model loads


def test_refused_credentials_are_one_line(tmp_path, tiny_export, claims):
    with s3_server.moto_server(tmp_path / "moto.log", check_credentials=True) as endpoint:
        listing = _cardd(endpoint, "infer", "s3://photos/claims/", "--checkpoint", tiny_export)
        writing = _cardd(endpoint, "assess", claims, "--damage-model", tiny_export,
                         "--out-dir", "s3://results/x/")  # fmt: skip
    for refused in (listing, writing):
        assert refused.returncode == 1 and "permission denied" in refused.stderr
        assert "check the credentials" in refused.stderr and "testing" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_an_interrupted_upload_leaves_nothing(bucket, tiny_export, tmp_path):
    endpoint, fs = bucket
    proxy = s3_server.CuttingProxy(endpoint, marker=b"/preds/")
    try:
        # botocore's own retries turned down (s3fs still retries): seconds, not minutes
        cut = _cardd(proxy.endpoint, "infer", "s3://photos/claims/", "--checkpoint", tiny_export,
                     "--out-dir", "s3://results/cut/", "--no-vis",
                     AWS_MAX_ATTEMPTS="1")  # fmt: skip
    finally:
        proxy.close()
    assert proxy.cut >= 1
    assert cut.returncode == 1 and "Traceback" not in cut.stderr
    assert "s3://results/cut/preds/claims/" in cut.stderr  # which upload failed
    left = fs.find("results/cut") if fs.exists("results/cut") else []
    assert not [name for name in left if "/preds/" in name or name.endswith("summary.json")]


def test_eval_scores_a_results_file_in_s3_into_s3(bucket, synthetic_root):
    endpoint, fs = bucket
    truth = read_json(synthetic_root / "annotations" / "instances_test2017.json")
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "score": 1.0}
        for a in truth["annotations"]
    ]  # fmt: skip
    fs.pipe_file("results/model_x/results.json", json.dumps(perfect).encode())
    truth_file = synthetic_root / "annotations" / "instances_test2017.json"
    fs.pipe_file("results/truth/test.json", truth_file.read_bytes())
    scored = _cardd(endpoint, "eval", "--results", "s3://results/model_x/results.json",
                    "--ann", "s3://results/truth/test.json",
                    "--out", "s3://results/eval1/")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert "s3://results/eval1/metrics.json" in scored.stdout
    metrics = json.loads(fs.cat_file("results/eval1/metrics.json"))
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)
    assert metrics["results"] == "s3://results/model_x/results.json"
    assert fs.exists("results/eval1/report.html")
    bad = _cardd(endpoint, "eval", "--results", "s3://results/truth/test.json", "--ann",
                 "s3://results/truth/test.json", "--out", "s3://results/eval2/")  # fmt: skip
    assert bad.returncode == 1 and "s3://results/truth/test.json is not a list" in bad.stderr
    assert not fs.exists("results/eval2")  # a failed evaluation uploads nothing


def test_assess_reads_a_claim_from_s3_and_writes_it_there(bucket, tiny_export):
    endpoint, fs = bucket
    assessed = _cardd(endpoint, "assess", "s3://photos/claims/", "--damage-model", tiny_export,
                      "--out-dir", "s3://results/claim-1234/")  # fmt: skip
    assert assessed.returncode == 0, assessed.stderr
    claim = json.loads(fs.cat_file("results/claim-1234/claim.json"))
    assert len(claim["photos"]) == 4
    assert {"claim.csv", "claim.html"} <= {
        name.rsplit("/", 1)[1] for name in fs.find("results/claim-1234")
    }


def test_photos_over_https_and_a_missing_one(claims, tiny_export, tmp_path):
    photo = sorted(claims.iterdir())[0]
    with FileServer() as server:
        server.files["/claims/car.jpg"] = photo.read_bytes()
        done = run_cardd("infer", f"{server.base_url}/claims/car.jpg", "--checkpoint",
                         tiny_export, "--out-dir", tmp_path / "out")  # fmt: skip
        missing = run_cardd("infer", f"{server.base_url}/claims/none.jpg", "--checkpoint",
                            tiny_export, "--out-dir", tmp_path / "out2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_json(tmp_path / "out" / "preds" / "car.jpg.json")
    assert document["image"] == f"{server.base_url}/claims/car.jpg"
    assert missing.returncode == 2 and "none.jpg does not exist" in missing.stderr


def test_a_backend_that_is_not_installed_names_its_extra():
    with pytest.raises(CarddError, match=r"pip install 'cardd\[gcs\]'"):
        storage.Folder("gs://bucket/out/")  # gcsfs is not installed here
    assert storage.is_url("s3://b/k") and not storage.is_url("photos/a.jpg")
    assert storage.local_path("file:///tmp/x") == Path("/tmp/x")
    # parsed as URLs: the host part, and percent-escapes
    assert storage.local_path("file://localhost/tmp/a%20b.jpg") == Path("/tmp/a b.jpg")
    with pytest.raises(CarddError, match="not on 'elsewhere'"):
        storage.local_path("file://elsewhere/tmp/x")
    assert storage.url_name("https://h/p/a%20b.jpg?sig=1") == "a b.jpg"
    assert storage.url_name("s3://b/inbox/..") == ".."  # kept, for safe_relative to refuse


def test_local_writes_are_whole_or_absent(tmp_path, monkeypatch):
    folder = storage.Folder(tmp_path / "out")
    folder.write_text("a/b.json", "{}")
    assert folder.files() == {"a/b.json"}

    def lost(source, target):  # written, and the machine went down before the rename
        raise OSError("power cut")

    monkeypatch.setattr(storage.os, "replace", lost)
    with pytest.raises(CarddError, match="cannot write .*power cut"):
        folder.write_text("a/c.json", "{}")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == ["b.json"]


def test_a_key_with_dotdot_is_a_failed_input_never_a_file_outside(bucket, claims, tiny_export,
                                                                   tmp_path):  # fmt: skip
    """S3 allows the key `inbox/../../../../x.png`; its outputs once landed outside
    --out-dir. It is refused by name (never read) and reported as failed; the rest runs."""
    endpoint, fs = bucket
    photo = sorted(claims.iterdir())[0].read_bytes()
    fs.pipe_file("photos/inbox/a.jpg", photo)
    fs.pipe_file("photos/inbox/../../../../x.png", photo)
    assert "photos/inbox/../../../../x.png" in fs.find("photos/inbox")  # the key is real
    out = tmp_path / "deep" / "er" / "out"
    result = _cardd(endpoint, "infer", "s3://photos/inbox/", "--recursive", "--checkpoint",
                    tiny_export, "--out-dir", out)  # fmt: skip
    assert result.returncode == 1, result.stderr  # one input failed
    assert "has an empty, '.' or '..' part; refused" in result.stdout + result.stderr
    assert [p for p in tmp_path.rglob("x.png*")] == []
    summary = read_json(out / "summary.json")
    assert summary["images_processed"] == 1 and summary["images_failed"] == 1
    assert "x.png" in summary["failed"][0]["image"]
