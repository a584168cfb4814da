"""Benchmark: can DCN_plus's training data loading keep a GPU busy?

Measured for this project on an H100: DCN_plus does 0.37 s of GPU work per
batch of 4 (0.31 s with AMP), so the loader must deliver about 11 images/s
(13 with AMP); with mmdet's default of 2 workers it did not. This times the
real DCN_plus training pipeline (decode, polygons to masks, random resize to
1333 x 640..1200, flip, pack) per image on CPU-size synthetic photos (CarDD's
typical 1024x768), with the pillow backend (the paper's) and cv2, and the real
DataLoader with 0..N workers; it then says how many workers the GPU needs.

    python scripts/bench/bench_dataloader.py [--images 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

# H100, batch 4, plain mmdet, measured for the project.
GPU_SECONDS_PER_BATCH = {"fp32": 0.37, "amp": 0.31}
BATCH = 4


def build_dataset(data_root: Path, backend: str):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    from cardd.models.configs import load_config, set_data_root

    cfg = load_config("DCN_plus")
    set_data_root(cfg, data_root)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == "RandomResize":
            step.backend = backend
    init_default_scope("mmdet")
    return cfg, DATASETS.build(cfg.train_dataloader.dataset)


def per_image_seconds(dataset, passes: int) -> float:
    dataset[0]  # warm-up
    times = []
    for _ in range(passes):
        for index in range(len(dataset)):
            start = time.perf_counter()
            dataset[index]
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def loader_images_per_second(cfg, workers: int, batches: int) -> float:
    from mmengine.runner import Runner

    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.num_workers = workers
    loader_cfg.persistent_workers = workers > 0
    loader_cfg.pin_memory = False  # no GPU here
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not steady state
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        seen += len(batch["inputs"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()

    import cv2

    from cardd.data.synth import synthesize

    cv2.setNumThreads(1)  # as in a loader worker
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp), images=args.images, size=(1024, 768))
        root = Path(tmp) / "CarDD_COCO"
        print(f"machine: {os.cpu_count()} cores; {args.images} synthetic 1024x768 images")
        results = {}
        for backend in ("pillow", "cv2"):
            cfg, dataset = build_dataset(root, backend)
            results[backend] = per_image_seconds(dataset, args.passes)
            print(
                f"pipeline per image, {backend:6s} resize: {results[backend] * 1000:.1f} ms "
                f"(one worker: {1 / results[backend]:.1f} images/s)"
            )
        cfg, _ = build_dataset(root, "pillow")
        for workers in range(0, args.workers + 1):
            rate = loader_images_per_second(cfg, workers, args.batches)
            print(f"DataLoader, {workers} workers, batch {BATCH}: {rate:.1f} images/s")
    for mode, seconds in GPU_SECONDS_PER_BATCH.items():
        need = BATCH / seconds
        workers = math.ceil(need * results["pillow"] * 1.5)  # 1.5: headroom for bigger photos
        print(
            f"GPU {mode}: {seconds} s per batch of {BATCH} needs {need:.1f} images/s -> "
            f"at least {workers} pillow worker(s) (with 1.5x headroom)"
        )


if __name__ == "__main__":
    main()
