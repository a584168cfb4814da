"""Benchmark: what `cardd serve` adds to the model's own time, at 1 and 8 clients.

Same machine, same checkpoint, same images, in one run: `DamageDetector.predict`
in-process plus the JSON document (`ImageResult.to_dict`, masks as RLE), then
`POST /v1/detect` against a live `cardd serve` on loopback from 1 client and
from 8 concurrent clients. Reports requests/s and p50/p95 latency, and the
ratio service p50 / in-process p50 at 1 client (target <= 1.15).

Without --checkpoint the model has random weights (speed does not depend on
what it learned). `--score-thr 0` keeps every detection, so mask encoding and
transfer are part of what is measured.

    python scripts/bench/bench_serve.py                              # tiny_DCN_plus, 320x240
    python scripts/bench/bench_serve.py --size 1024x768 --requests 20
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(config: str, checkpoint: Path, port: int, score_thr: float):
    import requests

    process = subprocess.Popen(
        [sys.executable, "-m", "cardd", "serve", "--config", config, "--checkpoint",
         str(checkpoint), "--device", "cpu", "--port", str(port), "--score-thr", str(score_thr)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("cardd serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny_DCN_plus")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the test images")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40, help="per measurement")
    parser.add_argument("--score-thr", type=float, default=0.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

    import requests

    from cardd import DamageDetector

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = make_images(tmp, args.images, width, height)
        payloads = [p.read_bytes() for p in images]
        checkpoint = args.checkpoint or random_checkpoint(args.config, tmp / "random.pth")

        detector = DamageDetector(args.config, checkpoint, device="cpu", score_thr=args.score_thr)
        from cardd.structures.images import load_image

        def in_process(i: int) -> float:
            started = time.perf_counter()
            result = detector.detect([load_image(images[i % len(images)])])[0]
            result.to_dict()
            return time.perf_counter() - started

        in_process(0)
        local = [in_process(i) for i in range(args.requests)]
        detections = len(detector.detect([load_image(images[0])])[0].detections)

        process, url = start_service(args.config, checkpoint, free_port(), args.score_thr)
        try:
            session = requests.Session()

            def one(i: int) -> float:
                started = time.perf_counter()
                response = session.post(
                    f"{url}/v1/detect",
                    files={"image": (f"{i}.jpg", payloads[i % len(payloads)])},
                    timeout=600,
                )
                response.raise_for_status()
                return time.perf_counter() - started

            one(0)
            began = time.perf_counter()
            single = [one(i) for i in range(args.requests)]
            single_rate = args.requests / (time.perf_counter() - began)

            def fresh(i: int) -> float:  # one session per client thread
                started = time.perf_counter()
                requests.post(
                    f"{url}/v1/detect",
                    files={"image": (f"{i}.jpg", payloads[i % len(payloads)])},
                    timeout=600,
                ).raise_for_status()
                return time.perf_counter() - started

            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                eight = list(pool.map(fresh, range(args.requests)))
            eight_rate = args.requests / (time.perf_counter() - began)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    print(f"{args.config}, {args.size}, {detections} detections per image, {args.requests} each")
    print(f"in-process predict + JSON : p50 {statistics.median(local) * 1000:.1f} ms, "
          f"p95 {percentile(local, 0.95) * 1000:.1f} ms")  # fmt: skip
    for name, values, rate in (
        ("1 client ", single, single_rate),
        ("8 clients", eight, eight_rate),
    ):
        p50, p95 = statistics.median(values) * 1000, percentile(values, 0.95) * 1000
        print(f"service, {name}       : {rate:.2f} req/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    ratio = statistics.median(single) / statistics.median(local)
    print(f"service p50 / in-process p50 at 1 client: {ratio:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
