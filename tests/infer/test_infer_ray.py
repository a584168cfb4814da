"""`cardd infer --engine ray` on a real local Ray cluster (`ray start --head`, a process
of its own, two model actors on CPU), against `--engine local` on the same images.

The model runs with one thread in both engines (Ray gives each CPU actor one; the
local run gets OMP_NUM_THREADS=1): a convolution's sums come in another order with
another thread count, and scores would then differ in their last digits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import read_json, run_cardd

pytest.importorskip("ray", reason="the Ray engine's tests need the ray extra")

pytestmark = pytest.mark.slow

#: Ray's token authentication is off for this private, loopback-only test cluster.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head --block` on loopback with 3 CPUs (2 model actors + decoding);
    yields its address; the process group is stopped at the end."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--num-cpus", "3", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", temp],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV},
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while "--block" not in (Path(temp) / "head.log").read_text():
            assert head.poll() is None, (Path(temp) / "head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield address
    finally:
        # Ray's head takes about 30 s to stop on SIGTERM (it drains its workers, which
        # the tests are done with); its whole process group is killed after 5
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(synthetic_root, tmp_path_factory) -> Path:
    """36 photos (the synthetic set three times over) and one file that is no image."""
    folder = tmp_path_factory.mktemp("ray_photos") / "photos"
    folder.mkdir()
    for n in range(3):
        for split in ("train2017", "val2017", "test2017"):
            for image in sorted((synthetic_root / split).glob("*.jpg")):
                shutil.copy(image, folder / f"{n}_{split}_{image.name}")
    (folder / "zz_broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _infer(photos: Path, model: Path, out: Path, *extra: str, env=None, **kwargs):
    return run_cardd(  # the photos named relative to the working directory, as users do
        "infer", photos.name, "--checkpoint", model, "--out-dir", out, "--score-thr", "0.05",
        *extra, env={**os.environ, **RAY_ENV, **(env or {})}, cwd=photos.parent, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_run(photos, tiny_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray_local") / "out"
    result = _infer(photos, tiny_export, out, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stderr  # the broken file is a failure
    return out


def assert_same_outputs(expected: Path, actual: Path) -> None:
    """Every file the same bytes, but for the timing and resume count in summary.json, the
    log of the run, and the options it was given (the engine, the workers)."""
    files = {p.relative_to(expected).as_posix() for p in expected.rglob("*") if p.is_file()}
    assert files == {p.relative_to(actual).as_posix() for p in actual.rglob("*") if p.is_file()}
    assert len([f for f in files if f.startswith("preds/")]) == 36
    for name in sorted(files - {"summary.json", "infer.log", "options.json"}):
        assert (expected / name).read_bytes() == (actual / name).read_bytes(), name
    varying = ("seconds_per_image", "images_resumed")
    a, b = read_json(expected / "summary.json"), read_json(actual / "summary.json")
    assert {k: v for k, v in a.items() if k not in varying} == {
        k: v for k, v in b.items() if k not in varying
    }


def test_ray_cluster_writes_the_local_engines_files(ray_cluster, photos, tiny_export, local_run,
                                                    tmp_path):  # fmt: skip
    out = tmp_path / "out"
    result = _infer(photos, tiny_export, out, "--engine", "ray", "--address", ray_cluster,
                    "--workers", "2")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "36 images" in result.stdout and "1 failed" in result.stdout
    assert "skipped photos/zz_broken.jpg" in result.stdout
    assert "Traceback" not in result.stderr
    assert "core_worker" not in result.stderr  # Ray's own notes: in infer.log
    assert_same_outputs(local_run, out)
    summary = read_json(out / "summary.json")
    assert summary["failed"][0]["image"] == "photos/zz_broken.jpg"  # as the user named it


def test_an_onnx_model_runs_on_the_cluster_as_locally(ray_cluster, photos, tiny_export,
                                                      tmp_path):  # fmt: skip
    """A `cardd export --format onnx` model travels to the actors like a .pth and is run
    by the onnxruntime engine there: the local engine's files, byte for byte."""
    model = tmp_path / "tiny.onnx"
    exported = run_cardd("export", "--checkpoint", tiny_export, "--out", model)
    assert exported.returncode == 0, exported.stderr
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    done = _infer(photos, model, local, env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    done = _infer(photos, model, cluster, "--engine", "ray", "--address", ray_cluster,
                  "--workers", "2")  # fmt: skip
    assert done.returncode == 1 and "36 images" in done.stdout, done.stderr
    assert_same_outputs(local, cluster)
    document = read_json(next((cluster / "preds").rglob("*.json")))
    assert document["checkpoint"] == str(model)  # the user's file, not the node's copy


def test_an_rtmdet_model_runs_on_the_cluster_as_locally(ray_cluster, photos, rtmdet_checkpoint,
                                                       tmp_path):  # fmt: skip
    """The fast family's checkpoint on the actors: the local engine's files, byte for byte."""
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    done = _infer(photos, rtmdet_checkpoint, local, env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    done = _infer(photos, rtmdet_checkpoint, cluster, "--engine", "ray", "--address",
                  ray_cluster, "--workers", "2")  # fmt: skip
    assert done.returncode == 1 and "36 images" in done.stdout, done.stderr
    assert_same_outputs(local, cluster)
    assert read_json(cluster / "summary.json")["detections"] > 0


def _results(out: Path) -> int:
    """The images' JSON files in `out`, not counting a writer's temporary file (a driver
    killed mid-write leaves `.<stem>.<random>.part.json`: not a result)."""
    from cardd.core.files import is_partial

    return sum(not is_partial(p) for p in (out / "preds").rglob("*.json"))


def _wait_for_preds(out: Path, count: int, job: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while _results(out) < count:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "no result appeared"
        time.sleep(0.05)


def _start(photos: Path, model: Path, out: Path, address: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cardd", "infer", photos.name, "--checkpoint", str(model),
         "--out-dir", str(out), "--score-thr", "0.05", "--engine", "ray", "--address", address,
         "--workers", "2", *extra],
        cwd=photos.parent, env={**os.environ, **RAY_ENV}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def test_a_killed_worker_is_replaced_and_the_job_completes(ray_cluster, photos, tiny_export,
                                                           local_run, tmp_path):  # fmt: skip
    out = tmp_path / "out"
    job = _start(photos, tiny_export, out, ray_cluster)
    _wait_for_preds(out, 3, job)
    killed = subprocess.run(["pkill", "-9", "-f", "ray::MapWorker"], check=False)
    assert killed.returncode == 0  # a model actor was running, and is gone
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 1, stderr  # 1: the broken file, not the lost worker
    assert_same_outputs(local_run, out)


def test_a_killed_driver_is_finished_by_resume(ray_cluster, photos, tiny_export, local_run,
                                               tmp_path):  # fmt: skip
    out = tmp_path / "out"
    job = _start(photos, tiny_export, out, ray_cluster)
    _wait_for_preds(out, 3, job)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate(timeout=60)
    finished = _results(out)
    assert 3 <= finished < 36 and not (out / "summary.json").exists()
    again = _infer(photos, tiny_export, out, "--engine", "ray", "--address", ray_cluster)
    assert "not empty" in again.stderr and again.returncode == 2  # never mixed by accident
    resumed = _infer(photos, tiny_export, out, "--engine", "ray", "--address", ray_cluster,
                     "--resume")  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr
    assert "from an earlier run" in resumed.stdout
    assert read_json(out / "summary.json")["images_resumed"] >= finished  # all whole: kept
    assert_same_outputs(local_run, out)


def test_resume_keeps_whole_results_and_refuses_another_threshold(
    photos, tiny_export, local_run, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(local_run, out)
    first = sorted((out / "preds").rglob("*.json"))
    for path in first[10:]:  # as if the run had stopped after 10 images
        path.unlink()
    (out / "summary.json").unlink()
    first[11].write_text('{"image": "photos/')  # a torn write of a backend without rename
    resumed = _infer(photos, tiny_export, out, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 1, resumed.stderr
    assert read_json(out / "summary.json")["images_resumed"] == 10
    assert_same_outputs(local_run, out)
    other = _infer(photos, tiny_export, out, "--resume", "--score-thr", "0.5")
    assert other.returncode == 2 and "another model or score threshold" in other.stderr


def test_without_ray_the_engine_says_how_to_install_it(photos, tiny_export, tmp_path):
    blocked = (
        "import sys; sys.modules['ray'] = None\n"
        "from cardd.cli.main import main; sys.argv[0] = 'cardd'; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "infer", str(photos), "--checkpoint", str(tiny_export),
         "--engine", "ray", "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "pip install 'cardd[ray]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_local_only_options_are_refused_with_the_local_engine(photos, tiny_export):
    result = _infer(photos, tiny_export, photos.parent / "x", "--address", "auto")
    assert result.returncode == 2 and "--engine ray" in result.stderr
    both = _infer(photos, tiny_export, photos.parent / "x", "--resume", "--exist-ok")
    assert both.returncode == 2 and "--exist-ok replaces" in both.stderr
