"""Benchmark: `cardd serve`'s peak memory under concurrent phone-size photos.

Starts `cardd serve` (default settings unless told otherwise) with a model of random
weights, sends N concurrent uploads of one flat W x H PNG (a few KB that decode to
W*H*3 bytes), probes /health every 0.2 s throughout, and reports the service
process's peak resident memory (the kernel's VmHWM), every answer's status and
the slowest /health.

`--cardd-root DIR` runs the service from another checkout (e.g. a `git worktree`
of an earlier commit), so before and after are measured on one machine in one
sitting with the same model file and photo:

    python scripts/bench/bench_serve_memory.py                        # this checkout
    git worktree add /tmp/before HEAD~5
    python scripts/bench/bench_serve_memory.py --cardd-root /tmp/before
    python scripts/bench/bench_serve_memory.py --score-thr 0          # as the web page asks
    python scripts/bench/bench_serve_memory.py --assess 20 --size 4000x3000 --clients 1 \
        --score-thr 0
                                     # one claim of 20 phone photos (12 MP) in /v1/assess
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import random_checkpoint  # noqa: E402
from bench_serve import free_port  # noqa: E402


def flat_png(width: int, height: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[height // 3 : height // 2, width // 4 : width // 2] = (30, 30, 30)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def start_service(args, checkpoint: Path, port: int, log, cwd: Path) -> subprocess.Popen:
    """`cardd serve` in `cwd` (`python -m` puts the working directory first on the path:
    a neutral one, so `--cardd-root` decides which cardd runs)."""
    import requests

    env = dict(os.environ)
    env["PYTHONPATH"] = str((args.cardd_root or Path(__file__).resolve().parents[2]).resolve())
    command = [
        sys.executable, "-m", "cardd", "serve", "--config", args.config, "--checkpoint",
        str(checkpoint), "--device", "cpu", "--port", str(port), *args.serve_arg,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    for _ in range(900):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"cardd serve exited {process.returncode}")
    process.kill()
    raise RuntimeError("cardd serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny_DCN_plus")
    parser.add_argument("--checkpoint", type=Path, help="default: random weights")
    parser.add_argument("--size", default="8000x6000", help="WIDTHxHEIGHT (48 MP)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--score-thr", type=float, help="per request (default: the service's)")
    parser.add_argument("--cardd-root", type=Path, help="serve from this checkout")
    parser.add_argument(
        "--assess", type=int, default=0, metavar="N",
        help="each client sends one /v1/assess claim of N photos instead of /v1/detect",
    )  # fmt: skip
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="passed on to cardd serve (repeat)"
    )
    args = parser.parse_args()

    import requests

    width, height = (int(v) for v in args.size.split("x"))
    photo = flat_png(width, height)
    params = {} if args.score_thr is None else {"score_thr": args.score_thr}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint or random_checkpoint(args.config, tmp / "random.pth")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(tmp / "serve.log", "w") as log:
            process = start_service(args, checkpoint, port, log, cwd=tmp)
        idle_kb = memory_kb(process.pid, "VmRSS")
        stop = threading.Event()
        health: list[float] = []
        health_failures = Counter()

        def probe() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    status = requests.get(f"{url}/health", timeout=30).status_code
                    if status != 200:
                        health_failures[status] += 1
                except requests.RequestException as error:
                    health_failures[type(error).__name__] += 1
                health.append(time.perf_counter() - began)
                time.sleep(0.2)

        def upload(i: int):
            began = time.perf_counter()
            try:
                if args.assess:
                    files = [("image", (f"{i}_{k}.png", photo)) for k in range(args.assess)]
                    response = requests.post(f"{url}/v1/assess", files=files, params=params,
                                             timeout=1800)  # fmt: skip
                    found = response.json().get("findings", []) if response.ok else None
                    detections = (
                        sum(len(f["evidence"]) for f in found) if found is not None else None
                    )
                else:
                    response = requests.post(
                        f"{url}/v1/detect", files={"image": (f"{i}.png", photo)},
                        params=params, timeout=900,
                    )  # fmt: skip
                    detections = (
                        len(response.json().get("detections", [])) if response.ok else None
                    )
                return response.status_code, detections, time.perf_counter() - began
            except requests.RequestException as error:
                return type(error).__name__, None, time.perf_counter() - began

        prober = threading.Thread(target=probe)
        prober.start()
        began = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                answers = list(pool.map(upload, range(args.clients)))
            elapsed = time.perf_counter() - began
            alive = process.poll() is None
            peak_kb = memory_kb(process.pid, "VmHWM") if alive else None
        finally:
            stop.set()
            prober.join()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        served_from = args.cardd_root or Path(__file__).resolve().parents[2]
        what = f"/v1/assess claims of {args.assess}" if args.assess else "/v1/detect uploads of"
        print(f"cardd serve from {served_from}, {args.config}, {args.clients} concurrent "
              f"{what} {width}x{height} PNG ({len(photo) / 1024:.0f} KB each), "
              f"score_thr {args.score_thr if args.score_thr is not None else 'default'}, "
              f"serve options {' '.join(args.serve_arg) or 'default'}")  # fmt: skip
        statuses = Counter(str(status) for status, _, _ in answers)
        counts = sorted({d for _, d, _ in answers if d is not None})
        print(f"answers: {dict(statuses)}; detections per 200: {counts}; all in {elapsed:.1f} s")
        if peak_kb is None:
            print("the service died under the load (killed for memory?)")
        else:
            print(f"service memory: idle {idle_kb / 2**20:.2f} GB, peak {peak_kb / 2**20:.2f} GB")
        print(f"/health: {len(health)} probes, slowest {max(health):.2f} s, "
              f"failures {dict(health_failures) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
