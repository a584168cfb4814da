"""`cardd infer`'s local engine: `DamageDetector.stream` over files, folders, globs
and URLs in this process, each result written behind the model (`WriteBehind`).

The stream decodes photos ahead of the model in threads; `--engine ray` hands the
job to `cardd.infer.ray` instead. Inputs, the output folder and the writers both
engines use are in `cardd.infer.common`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import PurePosixPath

from cardd.core import logs, storage
from cardd.core.errors import CarddUsageError
from cardd.core.runs import save_options
from cardd.detector.inputs import InputImage, collect_inputs
from cardd.detector.results import ImageResult
from cardd.infer.common import (
    INFER_RUN,
    InferSummary,
    ModelInfo,
    finish_run,
    finished_images,
    log_into,
    open_detector,
    refused_inputs,
    write_image,
)
from cardd.infer.options import ENGINES, InferOptions


class WriteBehind:
    """Writing behind the model, on one thread, in input order, at most `window`
    behind (drawing and encoding release the GIL in OpenCV); an error in a write is
    raised in the caller. With 0 workers everything runs inline, as a reference and
    for debugging."""

    def __init__(self, workers: int, window: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.window = max(1, window)
        self._writer = ThreadPoolExecutor(1, "cardd-write") if workers else None
        self._writes: deque = deque()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True, cancel_futures=True)

    def write(self, function: Callable, *args) -> None:
        """Run `function(*args)` behind the model, in order."""
        if self._writer is None:
            function(*args)
            return
        self._writes.append(self._writer.submit(function, *args))
        while len(self._writes) > self.window:
            self._writes.popleft().result()

    def flush(self) -> None:
        while self._writes:
            self._writes.popleft().result()


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def run_inference(options: InferOptions) -> InferSummary:
    """Run `cardd infer`: load the model once, then stream outputs image by image.

    Images are decoded ahead of the model and written behind it (`WriteBehind`); bad
    images are reported and skipped; the summary lists them. `--engine ray` hands
    the images to `cardd.infer.ray` instead.
    """
    from tqdm import tqdm


    if options.batch_size < 1:
        raise CarddUsageError("--batch-size must be >= 1")
    if options.engine not in ENGINES:
        raise CarddUsageError(f"--engine must be one of {', '.join(ENGINES)}")
    if options.engine == "local" and (options.address is not None or options.gpus_per_worker):
        raise CarddUsageError("--address and --gpus-per-worker go with --engine ray")
    if options.workers is not None and options.workers < 0:
        raise CarddUsageError("--workers must be >= 0")
    images = collect_inputs(options.inputs, options.recursive)
    INFER_RUN.check(options.out_dir, options.exist_ok, options.resume)
    if options.engine == "ray":
        from cardd.infer.ray import run_on_ray

        return run_on_ray(options, images)
    workers = default_workers() if options.workers is None else options.workers
    run_log = logs.RunLog("infer.log")  # mmengine's lines (weights loaded...): the file only
    try:
        detector = open_detector(options)
        if options.half and not detector.device.startswith("cuda"):
            tqdm.write("warning: --half on CPU is slower than float32; it is meant for CUDA GPUs")
        model = ModelInfo(detector.checkpoint, detector.config_source, detector.classes)
        folder = INFER_RUN.open(options.out_dir, options.exist_ok, options.resume)
        save_options(folder, options, checkpoint=str(detector.checkpoint), device=detector.device)
        done = finished_images(folder, images, model, options) if options.resume else {}
        with log_into(run_log, folder):
            return _run(options, images, detector, folder, workers, done)
    finally:
        run_log.close()


#: Up to this many images `cardd infer` prints a line per image; more get a progress bar.
LINES_UP_TO = 20


def image_line(position: int, total: int, item: InputImage, result: ImageResult, ms: float) -> str:
    """`image 2/4 a/car.jpg: 1024x768 2 dent, 1 scratch, 45.1 ms` (as `yolo predict`)."""
    return f"image {position}/{total} {item.relative}: {result.summary()}, {ms:.1f} ms"


def _run(options: InferOptions, images: list, detector, folder: storage.Folder, workers: int,
         done: dict) -> InferSummary:  # fmt: skip
    from tqdm import tqdm

    began = time.perf_counter()
    entries: dict[PurePosixPath, dict] = dict(done)
    failed = refused_inputs(images)
    todo = [item for item in images if item.relative not in done and not item.refused]
    lines = logs.verbosity() >= logs.NORMAL and len(todo) <= LINES_UP_TO
    by_name = {item.relative: item for item in todo}
    failed_batches: set[str] = set()

    def write(item: InputImage, result: ImageResult, position: int) -> None:
        entries[item.relative] = write_image(folder, item, result.pixels, result,
                                             options.visualize)  # fmt: skip
        if lines:
            tqdm.write(image_line(position, len(todo), item, result, result.timing_ms["model"]))
        bar.update(1)

    with (
        tqdm(
            total=len(todo), unit="img", desc="infer",
            disable=lines or logs.verbosity() == logs.QUIET,
        ) as bar,
        WriteBehind(workers, window=2 * options.batch_size) as behind,
    ):  # fmt: skip
        stream = detector.stream(todo, batch_size=options.batch_size, workers=workers)
        for position, result in enumerate(stream, start=1):
            item = by_name[result.name]
            if result.ok:
                behind.write(write, item, result, position)
                continue
            failed[item.relative] = {"image": str(item.path), "reason": result.error}
            if not result.error.startswith("the model failed"):
                tqdm.write(f"skipped {result.error}")
            elif result.error not in failed_batches:  # once per batch
                failed_batches.add(result.error)
                tqdm.write(f"skipped image(s): {result.error}")
            bar.update(1)
    model = ModelInfo(detector.checkpoint, detector.config_source, detector.classes)
    return finish_run(folder, images, entries, failed, model, options,
                      time.perf_counter() - began, resumed=len(done))  # fmt: skip
