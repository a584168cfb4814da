"""Benchmark: PyTorch (cardd's kernels) against onnxruntime, per photo, end to end.

For each config (random weights: the speed does not depend on them), a checkpoint
is written, exported with `cardd export --format onnx`, and both files run through
`DamageDetector.detect` on a CarDD-sized photo (1024x768, resized by the test
pipeline to 1067x800 for DCN_plus) with 1 and 2 threads (OMP_NUM_THREADS, which
both engines follow), each in a fresh process: one warm-up call, then the median of
`--rounds`. Then `cardd serve` of each file, and its resident memory (VmRSS) at
rest, after one photo.

    python scripts/bench/bench_onnx.py                          # tiny_DCN_plus and DCN_plus
    python scripts/bench/bench_onnx.py --configs tiny_DCN_plus --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402
from bench_serve import free_port  # noqa: E402
from bench_serve_memory import memory_kb  # noqa: E402


def worker(engine: str, model: str, config: str, image: str, rounds: int,
           score_thr: float = 0.3, max_detections: int | None = None) -> None:  # fmt: skip
    """One engine in this process: seconds per photo (and the detections, masks made), as
    JSON on stdout."""
    from cardd.detector.predictor import DamageDetector
    from cardd.structures.images import load_image

    detector = DamageDetector(config if engine == "pth" else None, model, "cpu",
                              score_thr=score_thr)  # fmt: skip
    array = load_image(image)

    def run() -> int:
        found = detector.detect([array], max_detections=max_detections)[0]
        return sum(d.mask is not None for d in found.detections)  # every mask, as outputs need

    run()  # warm-up: first-call allocations, lazy imports
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        detections = run()
        times.append(time.perf_counter() - start)
    torch_loaded = "torch" in sys.modules
    print(json.dumps({"median_s": statistics.median(times), "torch_loaded": torch_loaded,
                      "detections": detections}))  # fmt: skip


def timed(engine, model, config, image, rounds, threads, score_thr=0.3,
          max_detections=None) -> dict:  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--worker", engine, str(model), config, str(image),
               str(rounds), str(score_thr), str(max_detections or 0)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def serve_memory_mb(model: Path, config: str | None, image: Path, folder: Path) -> float:
    """`cardd serve` of `model`: VmRSS after one photo, in MB."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "cardd", "serve", *(["--config", config] if config else []),
               "--checkpoint", str(model), "--device", "cpu", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with open(folder / f"serve-{model.suffix[1:]}.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            for _ in range(1500):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.2)
            with open(image, "rb") as f:
                requests.post(f"http://127.0.0.1:{port}/v1/detect", files={"image": f},
                              timeout=300).raise_for_status()  # fmt: skip
            time.sleep(1)
            return memory_kb(process.pid, "VmRSS") / 1024
        finally:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny_DCN_plus", "DCN_plus"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, model, config, image, rounds, score_thr, limit = args.worker
        worker(engine, model, config, image, int(rounds), float(score_thr), int(limit) or None)
        return
    with tempfile.TemporaryDirectory(prefix="cardd-bench-onnx-") as tmp:
        folder = Path(tmp)
        image = make_images(folder, 1, 1024, 768)[0]
        rows = []
        for config in args.configs:
            pth = random_checkpoint(config, folder / f"{config}.pth")
            onnx = folder / f"{config}.onnx"
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "cardd", "export", "--config", config, "--checkpoint",
                 str(pth), "--out", str(onnx)], capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(done.stderr)
            export_s = time.perf_counter() - start
            print(f"{config}: exported in {export_s:.0f} s, {onnx.stat().st_size / 1e6:.0f} MB; "
                  f"{done.stdout.splitlines()[0]}", flush=True)  # fmt: skip
            for threads in args.threads:
                torch_s = timed("pth", pth, config, image, args.rounds, threads)["median_s"]
                ort = timed("onnx", onnx, config, image, args.rounds, threads)
                assert not ort["torch_loaded"], "the ONNX engine imported torch"
                rows.append((config, threads, torch_s, ort["median_s"]))
                print(f"  {threads} thread(s): PyTorch {torch_s:.3f} s, onnxruntime "
                      f"{ort['median_s']:.3f} s per photo: {ort['median_s'] / torch_s:.2f}x",
                      flush=True)  # fmt: skip
            memory = (serve_memory_mb(pth, config, image, folder),
                      serve_memory_mb(onnx, None, image, folder))  # fmt: skip
            print(f"  cardd serve after one photo: PyTorch {memory[0]:.0f} MB, onnxruntime "
                  f"{memory[1]:.0f} MB", flush=True)  # fmt: skip
        print("\n| config | threads | PyTorch s/photo | onnxruntime s/photo | ratio |")
        print("|---|---|---|---|---|")
        for config, threads, torch_s, ort_s in rows:
            ratio = ort_s / torch_s
            print(f"| {config} | {threads} | {torch_s:.3f} | {ort_s:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
