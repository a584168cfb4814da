"""Benchmark: cardd's inference overhead over plain MMDetection, and `cardd --help`.

Same machine, same model object, same images, in one run: `DamageDetector.predict`
(path in, thresholded `Detection`s with masks out) against mmdet's
`inference_detector` (path in, raw `DetDataSample` out), interleaved so that
drift on a noisy machine hits both alike. Reports the median seconds per image
and the ratio (cardd / mmdet); the target is <= 1.05.

Without --checkpoint the model has random weights (speed does not depend on
what it learned), saved with CarDD's class names so that `DamageDetector`
accepts it.

    python scripts/bench/bench_infer.py                          # tiny_DCN_plus, 320x240
    python scripts/bench/bench_infer.py --config DCN_plus --size 1024x768 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_images(folder: Path, count: int, width: int, height: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        pixels[height // 3 : height // 2, width // 4 : width // 2] = (30, 30, 30)
        path = folder / f"{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def random_checkpoint(config: str, path: Path) -> Path:
    import torch

    from cardd.models.configs import load_config
    from cardd.structures.classes import METAINFO

    cfg = load_config(config)  # cardd is imported: mmcv-lite's ops find its kernels
    from mmdet.apis import init_detector

    cfg.model.backbone.init_cfg = None
    model = init_detector(cfg, checkpoint=None, device="cpu")
    # mmdet's own initialisation, as a training starts: the heads' priors keep every class
    # score near 0.01, so no detection passes a threshold (untouched, RTMDet's are 0.5)
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel("WARNING")  # its note on every weight
    model.init_weights()
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": dict(METAINFO)}}, path)
    return path


def time_help(repeats: int = 5) -> float:
    cardd = Path(sys.executable).with_name("cardd")
    command = (
        [str(cardd), "--help"] if cardd.exists() else [sys.executable, "-m", "cardd", "--help"]
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny_DCN_plus")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the test images")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the images")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from mmdet.apis import inference_detector

    from cardd import DamageDetector

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = make_images(tmp, args.images, width, height)
        checkpoint = args.checkpoint or random_checkpoint(args.config, tmp / "random.pth")
        start = time.perf_counter()
        detector = DamageDetector(
            args.config,
            checkpoint,
            device=args.device,
            score_thr=0.3,
            trust_checkpoint=args.checkpoint is None,
        )
        load_seconds = time.perf_counter() - start

        def plain(path):
            with torch.no_grad():  # as mmdet's own demo runs it
                return inference_detector(detector.model, str(path))

        plain(images[0])  # warm-up, both paths
        detector.predict(images[0])
        ours, theirs = [], []
        for _ in range(args.repeats):
            for path in images:
                start = time.perf_counter()
                plain(path)
                theirs.append(time.perf_counter() - start)
                start = time.perf_counter()
                detector.predict(path)
                ours.append(time.perf_counter() - start)

    cardd_s, mmdet_s = statistics.median(ours), statistics.median(theirs)
    threads = torch.get_num_threads()
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads, "
        f"device {args.device}"
    )
    passes = f"{args.images} images x {args.repeats} passes"
    print(f"model: {args.config}, images {width}x{height}, {passes}")
    print(f"model load (once): {load_seconds:.2f} s")
    print(f"mmdet inference_detector : {mmdet_s:.3f} s/image (median)")
    print(f"cardd DamageDetector     : {cardd_s:.3f} s/image (median)")
    print(f"ratio cardd / mmdet      : {cardd_s / mmdet_s:.3f}")
    print(f"cardd --help             : {time_help():.3f} s (median of 5)")


if __name__ == "__main__":
    main()
