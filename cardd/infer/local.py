"""`cardd infer`: run `DamageDetector` over files, folders and globs, stream the outputs.

The local engine: the model in this process, photos decoded ahead of it and
written behind it (`Overlap`); `--engine ray` hands the job to `cardd.infer.ray`.
Inputs, the output folder and the writers both engines use are in
`cardd.infer.common`.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath

from cardd.core import logs, storage
from cardd.core.errors import CarddUsageError, one_line
from cardd.detector.predictor import ImageResult
from cardd.infer.common import (
    ENGINES,
    InferOptions,
    InferSummary,
    InputImage,
    ModelInfo,
    check_out_dir,
    collect_inputs,
    finish_run,
    finished_images,
    load_input,
    log_into,
    prepare_out_dir,
    refused_inputs,
    write_image,
)


class Overlap:
    """Decoding ahead of the model and writing behind it, in threads, so the model waits
    for neither (decoding, drawing and encoding release the GIL in OpenCV and PIL).

    The model stays on the calling thread. Writes run on one thread, in input order,
    at most `window` behind; an error in one is raised in the caller. With 0 workers
    everything runs inline, in order, as a reference and for debugging.
    """

    def __init__(self, workers: int, window: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.window = max(1, window)
        self._decoders = ThreadPoolExecutor(workers, "cardd-decode") if workers else None
        self._writer = ThreadPoolExecutor(1, "cardd-write") if workers else None
        self._writes: deque = deque()

    def __enter__(self) -> Overlap:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            for pool in (self._decoders, self._writer):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)

    def decoded(self, images: list[InputImage]) -> Iterator[tuple[InputImage, object]]:
        """(image, BGR array or UnreadableImage), in input order, `window` decoded ahead."""
        if self._decoders is None:
            yield from ((item, load_input(item.path)) for item in images)
            return
        ahead: deque = deque()
        upcoming = iter(images)
        for item in upcoming:
            ahead.append((item, self._decoders.submit(load_input, item.path)))
            if len(ahead) > self.window:
                done, future = ahead.popleft()
                yield done, future.result()
        while ahead:
            done, future = ahead.popleft()
            yield done, future.result()

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

    Images are decoded ahead of the model and written behind it (`Overlap`); bad
    images are reported and skipped; the summary lists them. `--engine ray` hands
    the images to `cardd.infer.ray` instead.
    """
    from tqdm import tqdm

    from cardd.detector.predictor import DamageDetector

    if options.batch_size < 1:
        raise CarddUsageError("--batch-size must be >= 1")
    if options.engine not in ENGINES:
        raise CarddUsageError(f"--engine must be one of {', '.join(ENGINES)}")
    if options.resume and options.exist_ok:
        raise CarddUsageError("--resume keeps an earlier run's outputs, --exist-ok replaces them")
    if options.resume and options.out_dir is None:
        raise CarddUsageError("--resume needs the --out-dir of the run to finish")
    if options.workers is not None and options.workers < 0:
        raise CarddUsageError("--workers must be >= 0")
    images = collect_inputs(options.inputs, options.recursive)
    check_out_dir(options.out_dir, options.exist_ok, options.resume)
    if options.engine == "ray":
        from cardd.infer.ray import run_on_ray

        return run_on_ray(options, images)
    workers = default_workers() if options.workers is None else options.workers
    run_log = logs.RunLog("infer.log")  # mmengine's lines (weights loaded...): the file only
    try:
        detector = DamageDetector.from_options(options)
        if options.half and not detector.device.startswith("cuda"):
            tqdm.write("warning: --half on CPU is slower than float32; it is meant for CUDA GPUs")
        model = ModelInfo(detector.checkpoint, detector.config_source, detector.classes)
        folder = prepare_out_dir(options.out_dir, options.exist_ok, options.resume)
        done = finished_images(folder, images, model, options) if options.resume else {}
        with log_into(run_log, folder):
            return _run(options, images, detector, folder, workers, done)
    finally:
        run_log.close()


#: Up to this many images `cardd infer` prints a line per image; more get a progress bar.
LINES_UP_TO = 20


def image_line(position: int, total: int, item: InputImage, result: ImageResult, ms: float) -> str:
    """`image 2/4 a/car.jpg: 1024x768 2 dent, 1 scratch, 45.1 ms` (as `yolo predict`)."""
    counts = Counter(d.label for d in result.detections)
    found = ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "no detections"
    size = f"{result.width}x{result.height}"
    return f"image {position}/{total} {item.relative}: {size} {found}, {ms:.1f} ms"


def _run(options: InferOptions, images: list, detector, folder: storage.Folder, workers: int,
         done: dict) -> InferSummary:  # fmt: skip
    from tqdm import tqdm

    from cardd.detector.predictor import UnreadableImage

    began = time.perf_counter()
    entries: dict[PurePosixPath, dict] = dict(done)
    failed = refused_inputs(images)
    todo = [item for item in images if item.relative not in done and not item.refused]
    lines = logs.verbosity() >= logs.NORMAL and len(todo) <= LINES_UP_TO

    def fail(item: InputImage, reason: str) -> None:
        failed[item.relative] = {"image": str(item.path), "reason": reason}

    def write(item: InputImage, array, result: ImageResult, ms: float, position: int) -> None:
        entries[item.relative] = write_image(folder, item, array, result, options.visualize)
        if lines:
            tqdm.write(image_line(position, len(todo), item, result, ms))
        bar.update(1)

    with (
        tqdm(
            total=len(todo), unit="img", desc="infer",
            disable=lines or logs.verbosity() == logs.QUIET,
        ) as bar,
        Overlap(workers, window=2 * options.batch_size) as overlap,
    ):  # fmt: skip
        batch: list[tuple[InputImage, object, int]] = []  # (image, array, its position)
        decoded = overlap.decoded(todo)
        for position, (item, array) in enumerate(decoded, start=1):
            if isinstance(array, UnreadableImage):
                fail(item, str(array))
                tqdm.write(f"skipped {array}")
                bar.update(1)
            else:
                batch.append((item, array, position))
            if batch and (len(batch) == options.batch_size or position == len(todo)):
                started = time.perf_counter()
                try:
                    results = detector.detect(
                        [array for _, array, _ in batch], [str(item.path) for item, _, _ in batch]
                    )
                except Exception as error:  # e.g. out of memory on a huge photo: go on
                    reason = f"the model failed on this batch: {one_line(error)}"
                    for item, _, _ in batch:
                        fail(item, reason)
                    tqdm.write(f"skipped {len(batch)} image(s): {reason}")
                    bar.update(len(batch))
                    results = []
                ms = (time.perf_counter() - started) * 1000 / len(batch)
                for (item, array, at), result in zip(batch, results, strict=False):
                    overlap.write(write, item, array, result, ms, at)
                batch = []
    model = ModelInfo(detector.checkpoint, detector.config_source, detector.classes)
    return finish_run(folder, images, entries, failed, model, options,
                      time.perf_counter() - began, resumed=len(done))  # fmt: skip
