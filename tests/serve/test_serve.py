"""`cardd serve` against a live uvicorn on loopback: the API, its limits, its shutdown."""

import contextlib
import io
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from click.testing import CliRunner
from PIL import Image

from cardd.cli.main import cli
from tests.conftest import run_cardd
from tests.detector.test_detector import _png_header_claiming
from tests.support import live_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo(synthetic_root):
    return sorted((synthetic_root / "test2017").glob("*.jpg"))[0]


def _post(service, path, data: bytes, name="car.jpg", **params):
    return requests.post(
        f"{service.url}{path}", files={"image": (name, data)}, params=params, timeout=120
    )


def test_health(service, tiny_checkpoint):
    from cardd import __version__
    from cardd.models import checkpoints
    from cardd.structures.classes import CLASSES

    health = requests.get(f"{service.url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["device"] == "cpu"
    assert health["classes"] == list(CLASSES) and health["version"] == __version__
    assert health["checkpoint"] == str(tiny_checkpoint)
    assert health["checkpoint_sha256"] == checkpoints.file_sha256(tiny_checkpoint)
    assert health["config"].endswith("tiny_DCN_plus.py") and not health["api_key_required"]
    assert health["half"] is False


def test_detect_gives_what_cardd_infer_gives(service, photo, tiny_checkpoint, tmp_path):
    out = tmp_path / "infer"
    result = CliRunner().invoke(
        cli,
        ["infer", str(photo), "--config", "tiny_DCN_plus", "--checkpoint", str(tiny_checkpoint),
         "--device", "cpu", "--score-thr", "0.1", "--out-dir", str(out), "--no-vis"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = json.loads((out / "preds" / f"{photo.name}.json").read_text())
    response = _post(service, "/v1/detect", photo.read_bytes(), name=photo.name, score_thr=0.1)
    assert response.status_code == 200, response.text
    answer = response.json()
    timing = answer.pop("timing_ms")
    assert set(timing) == {"decode", "model", "total"} and timing["total"] >= timing["model"] > 0
    assert answer["image"] == photo.name
    for key in ("width", "height", "config", "checkpoint", "score_thr"):
        assert answer[key] == expected[key], key
    assert len(answer["detections"]) == len(expected["detections"]) > 0
    for ours, theirs in zip(answer["detections"], expected["detections"], strict=True):
        assert ours["label"] == theirs["label"] and ours["category_id"] == theirs["category_id"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
        assert ours["bbox_xyxy"] == pytest.approx(theirs["bbox_xyxy"], abs=0.02)
        assert ours["area"] == pytest.approx(theirs["area"], rel=0.01, abs=2)
        assert ours["mask"]["size"] == theirs["mask"]["size"]


def test_threshold_per_request(service, photo):
    everything = _post(service, "/v1/detect", photo.read_bytes(), score_thr=0).json()["detections"]
    cut = sorted(d["score"] for d in everything)[len(everything) // 2]
    kept = _post(service, "/v1/detect", photo.read_bytes(), score_thr=cut).json()["detections"]
    assert all(d["score"] >= cut for d in kept)
    assert len(kept) == sum(d["score"] >= cut for d in everything) < len(everything)
    default = _post(service, "/v1/detect", photo.read_bytes()).json()
    assert default["score_thr"] == 0.3
    bad = _post(service, "/v1/detect", photo.read_bytes(), score_thr=1.5)
    assert bad.status_code == 422 and "score_thr" in bad.json()["error"]


def test_annotate_returns_the_photo_drawn_at_its_size(service, photo):
    response = _post(service, "/v1/annotate", photo.read_bytes(), score_thr=0)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    drawn = Image.open(io.BytesIO(response.content))
    assert drawn.format == "JPEG" and drawn.size == Image.open(photo).size


def _error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_bad_input_is_a_4xx_json_error_and_the_service_goes_on(service, photo, spool_dir):
    data = photo.read_bytes()
    _error(_post(service, "/v1/detect", b"this is not a photo", name="x.jpg"), 400)
    _error(_post(service, "/v1/detect", b"", name="empty.jpg"), 400)
    _error(_post(service, "/v1/detect", data[: len(data) // 2]), 400)
    _error(requests.post(f"{service.url}/v1/detect", data=b"raw", timeout=10), 400)
    _error(requests.post(f"{service.url}/v1/detect", files={"photo": ("a.jpg", data)}), 400)
    started = time.perf_counter()
    bomb = _post(service, "/v1/detect", _png_header_claiming(100_000, 100_000), name="bomb.png")
    _error(bomb, 413)
    assert "over the limit" in bomb.json()["error"] and time.perf_counter() - started < 1
    started = time.perf_counter()
    huge = _post(service, "/v1/detect", b"\xff" * (3 * 1024 * 1024), name="huge.jpg")
    _error(huge, 413)
    assert time.perf_counter() - started < 1
    assert _post(service, "/v1/detect", data).status_code == 200  # still serving
    assert not any(spool_dir.iterdir())  # no upload ever touched the disk


def test_endless_upload_is_cut_at_the_limit(service):
    def endless():
        chunk = b"\0" * 65536
        while True:
            yield chunk

    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    try:
        response = requests.post(
            f"{service.url}/v1/detect", data=endless(), headers=headers, timeout=30
        )
    except requests.ConnectionError:
        pass  # the service may close the connection mid-stream; then it answered 413 first
    else:
        _error(response, 413)
    assert requests.get(f"{service.url}/health", timeout=5).status_code == 200


def test_eight_clients_forty_requests_all_answered_right(service, photo):
    """With the default limits (4 photos at work, 16 requests waiting), eight clients
    at once all get their answers: the waiting room holds the four over the places."""
    data = photo.read_bytes()
    reference = _post(service, "/v1/detect", data, score_thr=0.1).json()["detections"]

    def one(_):
        response = _post(service, "/v1/detect", data, score_thr=0.1)
        return response.status_code, response.json().get("detections")

    health_seconds = []

    def probe():
        time.sleep(1.0)  # the model is busy with the queue by now
        started = time.perf_counter()
        assert requests.get(f"{service.url}/health", timeout=10).status_code == 200
        health_seconds.append((started, time.perf_counter()))

    prober = threading.Thread(target=probe)
    prober.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, range(40)))
    finished = time.perf_counter()
    prober.join()
    assert len(answers) == 40
    for status, detections in answers:
        assert status == 200
        assert [d["label"] for d in detections] == [d["label"] for d in reference]
        assert [d["score"] for d in detections] == pytest.approx(
            [d["score"] for d in reference], abs=1e-6
        )
    # /health answered while requests were still queued for the model
    assert health_seconds and health_seconds[0][1] < finished


def test_past_the_waiting_room_busy_answers_503_with_retry_after(service, photo):
    """48 clients at 4 places and a waiting room of 16: each gets its detections or a
    quick 503, never a wait without bound; /health answers throughout."""
    data = photo.read_bytes()

    def one(_):
        return _post(service, "/v1/detect", data, score_thr=0.1)

    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(one, range(96)))
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "2" and "busy" in busy.json()["error"]
    health = requests.get(f"{service.url}/health", timeout=5).json()
    assert health["in_flight"] == 0 and health["waiting"] == 0
    assert health["max_queue"] == 4 and health["max_waiting"] == 16


def test_a_request_threshold_and_count_reach_the_model(service, photo):
    data = photo.read_bytes()
    everything = _post(service, "/v1/detect", data, score_thr=0).json()
    assert len(everything["detections"]) > 3
    two = _post(service, "/v1/detect", data, score_thr=0, max_detections=2).json()
    assert two["max_detections"] == 2
    assert [d["score"] for d in two["detections"]] == [
        d["score"] for d in everything["detections"][:2]
    ]
    _error(_post(service, "/v1/detect", data, max_detections=0), 422)


def test_api_key_guards_v1_only(tiny_checkpoint, tmp_path, photo):
    saved = tmp_path / "saved"
    with live_service.running(
        tiny_checkpoint, tmp_path / "serve.log", "--save-dir", str(saved), "--half",
        env={"CARDD_API_KEY": "s3cret"},
    ) as keyed:  # fmt: skip
        from cardd.structures.classes import CLASSES

        health = requests.get(f"{keyed.url}/health", timeout=5).json()
        assert health["api_key_required"] and health["classes"] == list(CLASSES)
        assert not {"checkpoint", "checkpoint_sha256", "config", "device"} & set(health)
        full = requests.get(
            f"{keyed.url}/health", headers={"Authorization": "Bearer s3cret"}, timeout=5
        ).json()
        assert full["half"] is True  # options reach the model
        assert full["checkpoint"] == str(tiny_checkpoint)
        _error(_post(keyed, "/v1/detect", photo.read_bytes()), 401)
        wrong = requests.post(
            f"{keyed.url}/v1/annotate",
            files={"image": ("a.jpg", photo.read_bytes())},
            headers={"Authorization": "Bearer nope"},
            timeout=60,
        )
        _error(wrong, 401)
        right = requests.post(
            f"{keyed.url}/v1/detect",
            files={"image": ("a.jpg", photo.read_bytes())},
            headers={"Authorization": "Bearer s3cret"},
            timeout=60,
        )
        assert right.status_code == 200
        assert not any(saved.glob("*.img"))
        jpgs, jsons = list(saved.glob("*.jpg")), list(saved.glob("*.json"))
        assert len(jpgs) == len(jsons) == 1  # only the authorised upload was kept
        assert jpgs[0].read_bytes() == photo.read_bytes()


def test_sigterm_finishes_in_flight_work_and_exits_zero(tiny_checkpoint, tmp_path, photo):
    service = live_service.start(tiny_checkpoint, tmp_path / "serve.log", host="0.0.0.0")
    assert "without an API key" in service.output()  # a warning, not a refusal
    answers = []
    worker = threading.Thread(
        target=lambda: answers.append(_post(service, "/v1/detect", photo.read_bytes()))
    )
    worker.start()
    time.sleep(0.2)
    started = time.perf_counter()
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=30)
    worker.join(timeout=30)
    assert code == 0, service.output()
    assert time.perf_counter() - started < 10
    assert answers and answers[0].status_code in (200, 503)


def test_schema_and_page_are_served_and_nothing_from_a_cdn(service):
    _error(requests.get(f"{service.url}/docs", timeout=5), 404)  # Swagger UI needs a CDN
    schema = requests.get(f"{service.url}/openapi.json", timeout=5).json()
    assert {"/health", "/v1/detect", "/v1/annotate"} <= set(schema["paths"])
    page = requests.get(f"{service.url}/", timeout=5)
    assert page.status_code == 200 and "cardd" in page.text
    assert requests.get(f"{service.url}/static/app.js", timeout=5).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside


def test_a_taken_port_is_one_line_before_any_model_loads(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["serve", "--checkpoint", str(tmp_path / "none.pth"), "--port", str(port)]
        )
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.output


def test_an_unexpected_error_is_a_json_500_and_the_log_has_it(caplog):
    from fastapi.testclient import TestClient

    from cardd.serve.app import create_app
    from cardd.serve.limits import Admission
    from cardd.serve.options import ServeOptions

    class FailingService:  # cardd's Service whose decoding fails in a way nobody foresaw
        options = ServeOptions()
        admission = Admission(4, 16, 2**20)

        def decode(self, data, name):
            raise ZeroDivisionError("a bug")

    client = TestClient(create_app(FailingService()), raise_server_exceptions=False)
    answer = client.post("/v1/detect", files={"image": ("a.jpg", b"xx")})
    _error(answer, 500)
    assert answer.json()["error"].startswith("internal error (ZeroDivisionError)")
    assert "a bug" in caplog.text


def test_replicas_share_one_port_and_a_dead_one_is_replaced(tiny_checkpoint, synthetic_root,
                                                            tmp_path):  # fmt: skip
    """`--replicas 2`: two processes, each its own model and /health, behind one port; the
    same photo gets the same answer from either; a killed replica comes back in its place."""
    import os

    photo = sorted((synthetic_root / "test2017").glob("*.jpg"))[0].read_bytes()
    service = live_service.start(tiny_checkpoint, tmp_path / "serve.log", "--replicas", "2")
    try:

        def replicas_seen(seconds: float = 180) -> dict[int, int]:
            """index -> pid of the replicas that answered, until both did; a new connection
            each time (the kernel picks a replica; one still loading its model takes none)."""
            seen, deadline = {}, time.monotonic() + seconds
            while len(seen) < 2 and time.monotonic() < deadline:
                with contextlib.suppress(requests.ConnectionError):
                    replica = requests.get(f"{service.url}/health", timeout=10).json()["replica"]
                    assert replica["of"] == 2
                    seen[replica["index"]] = replica["pid"]
                time.sleep(0.05)
            return seen

        seen = replicas_seen()
        assert set(seen) == {0, 1} and len(set(seen.values())) == 2
        answers = {
            json.dumps(
                requests.post(f"{service.url}/v1/detect", files={"image": ("car.jpg", photo)},
                              timeout=60).json()["detections"]
            )
            for _ in range(8)
        }  # fmt: skip
        assert len(answers) == 1  # whichever replica answered
        os.kill(seen[1], signal.SIGKILL)
        deadline = time.monotonic() + 180
        while True:
            again = replicas_seen(10)
            if again.get(1) not in (None, seen[1]):
                break
            assert time.monotonic() < deadline, "the killed replica did not come back"
        assert again[0] == seen[0] and service.process.poll() is None
    finally:
        assert live_service.stop(service) == 0
    assert "2 replicas" in service.output() and "Traceback" not in service.output()


def test_replicas_check_everything_first_and_stop_when_one_cannot_start(tiny_checkpoint,
                                                                         tmp_path):  # fmt: skip
    """A bad rules file is found once, before any replica; a replica that cannot start
    (no CUDA here) stops the service with its reason and exit 1, not restarts forever."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nscores: {confirm: .nan}\n")
    bad_rules = run_cardd("serve", "--checkpoint", tiny_checkpoint, "--replicas", "2",
                          "--rules", rules, "--port", str(live_service.free_port()), timeout=120)
    assert bad_rules.returncode == 1 and "scores.confirm must be a finite" in bad_rules.stderr
    assert "Traceback" not in bad_rules.stderr
    began = time.monotonic()
    no_gpu = run_cardd("serve", "--checkpoint", tiny_checkpoint, "--replicas", "2", "--device",
                       "cuda", "--port", str(live_service.free_port()), timeout=180)
    assert no_gpu.returncode == 1, no_gpu.stderr
    assert "a replica could not start: replica" in no_gpu.stderr, no_gpu.stderr
    assert time.monotonic() - began < 120
