"""Benchmark: the model families side by side, per CarDD-sized photo, on both engines.

RTMDet-Ins t, s and m against DCN_plus, with random weights (mmdet's initialisation: the
speed of a network does not depend on its weights). For each config a checkpoint is
written and exported with `cardd export --format onnx`; both files run through
`DamageDetector.detect` on a 1024x768 photo with 1 and 2 threads, each in a fresh
process (`bench_onnx.timed`: a warm-up call, then the median of `--rounds`), twice: at
threshold 0.3, which no detection of these weights passes (the network, its NMS, the
pre- and post-processing: a photo without damage), and with the best 20 detections
kept, each with its mask in the photo (a photo with much damage). Then `cardd serve` of
each file and its resident memory after one photo. Ratios are against DCN_plus on the
same engine, threads, photo and detections.

    python scripts/bench/bench_families.py
    python scripts/bench/bench_families.py --configs RTMDet_ins_s DCN_plus --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import make_images, random_checkpoint  # noqa: E402
from bench_onnx import serve_memory_mb, timed  # noqa: E402

FAMILIES = ["RTMDet_ins_t", "RTMDet_ins_s", "RTMDet_ins_m", "DCN_plus"]


def export(config: str, pth: Path, onnx: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cardd", "export", "--config", config, "--checkpoint", str(pth),
         "--out", str(onnx)], capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=FAMILIES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reference", default="DCN_plus")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}",
          flush=True)  # fmt: skip
    seconds: dict[tuple[str, str, int, int], float] = {}
    memory: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="cardd-bench-families-") as tmp:
        folder = Path(tmp)
        image = make_images(folder, 1, 1024, 768)[0]
        for config in args.configs:
            pth = random_checkpoint(config, folder / f"{config}.pth")
            onnx = folder / f"{config}.onnx"
            took = export(config, pth, onnx)
            print(f"{config}: exported in {took:.0f} s, {onnx.stat().st_size / 1e6:.0f} MB",
                  flush=True)  # fmt: skip
            for threads in args.threads:
                for found, (thr, limit) in ((0, (0.3, None)), (20, (0.0, 20))):
                    mine = timed("pth", pth, config, image, args.rounds, threads, thr, limit)
                    ort = timed("onnx", onnx, config, image, args.rounds, threads, thr, limit)
                    assert not ort["torch_loaded"], "the ONNX engine imported torch"
                    assert mine["detections"] == ort["detections"] == found, (mine, ort)
                    seconds[config, "PyTorch", threads, found] = mine["median_s"]
                    seconds[config, "onnxruntime", threads, found] = ort["median_s"]
                    print(f"  {threads} thread(s), {found} detections: PyTorch "
                          f"{mine['median_s']:.3f} s, onnxruntime {ort['median_s']:.3f} s per "
                          "photo", flush=True)  # fmt: skip
            memory[config, "PyTorch"] = serve_memory_mb(pth, config, image, folder)
            memory[config, "onnxruntime"] = serve_memory_mb(onnx, None, image, folder)
            print(f"  cardd serve after one photo: PyTorch {memory[config, 'PyTorch']:.0f} MB, "
                  f"onnxruntime {memory[config, 'onnxruntime']:.0f} MB", flush=True)
    reference = args.reference if args.reference in args.configs else None
    versus = f"vs {reference}" if reference else "-"
    print(f"\n| config | engine | threads | s/photo, none | {versus} | s/photo, 20 with masks | "
          f"{versus} | serve MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for config in args.configs:
        for engine in ("PyTorch", "onnxruntime"):
            for threads in args.threads:
                cells = []
                for found in (0, 20):
                    value = seconds[config, engine, threads, found]
                    base = seconds[reference, engine, threads, found] if reference else None
                    cells += [f"{value:.3f}", f"{value / base:.3f}x" if base else "-"]
                print(f"| {config} | {engine} | {threads} | {' | '.join(cells)} | "
                      f"{memory[config, engine]:.0f} |")


if __name__ == "__main__":
    main()
