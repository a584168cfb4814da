"""`cardd infer`: run `DamageDetector` over files, folders and globs, stream the outputs.

Output folder layout (see the README):
    vis/<relative path>          annotated image
    thumbs/<relative path>.jpg   its thumbnail, for index.html
    preds/<relative path>.json   detections of one image
    predictions.csv              one row per detection
    summary.json                 counts, failures, timing
    index.html                   every image, its detections, counts, failures
"""

from __future__ import annotations

import csv
import glob
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cardd import logs
from cardd.classes import ClassSet
from cardd.detector import CSV_HEADER, ImageResult
from cardd.errors import CarddUsageError, one_line
from cardd.options import SCORE_THR
from cardd.runs import next_run_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class InputImage:
    """An image to process and where its outputs go, relative to the output folder."""

    path: Path
    relative: PurePosixPath


@dataclass
class InferOptions:
    inputs: tuple[str, ...]
    config: str | None = None  # None: the export's own config, else DCN_plus
    checkpoint: str = "latest"
    work_dir: Path | None = None
    out_dir: Path | None = None
    score_thr: float = SCORE_THR.default
    device: str = "auto"
    batch_size: int = 1
    recursive: bool = False
    visualize: bool = True
    exist_ok: bool = False
    trust_checkpoint: bool = False
    half: bool = False
    workers: int | None = None  # threads decoding ahead and writing behind; 0: none


@dataclass
class InferSummary:
    out_dir: Path
    processed: int = 0
    failed: list[dict] = field(default_factory=list)
    per_class: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # wall time of the image loop: decode, model, outputs
    config_source: str = ""
    classes: ClassSet | None = None  # the model's

    @property
    def detections(self) -> int:
        return sum(self.per_class.values())

    def line(self) -> str:
        """`4 images, 7 detections (5 crack, 2 dent), 1 failed, 3.2 img/s -> runs/infer/exp`"""
        per_class = ", ".join(f"{n} {name}" for name, n in self.per_class.most_common())
        detections = f"{self.detections} detections" + (f" ({per_class})" if per_class else "")
        failed = f", {len(self.failed)} failed" if self.failed else ""
        rate = f", {self.processed / self.seconds:.1f} img/s" if self.seconds else ""
        return f"{self.processed} images, {detections}{failed}{rate} -> {self.out_dir}"

    def to_dict(self, options: InferOptions, checkpoint: Path) -> dict:
        return {
            "config": self.config_source,
            "checkpoint": str(checkpoint),
            "score_thr": options.score_thr,
            "half": options.half,
            "batch_size": options.batch_size,
            "images_processed": self.processed,
            "images_failed": len(self.failed),
            "failed": self.failed,
            "detections": self.detections,
            "detections_per_class": {
                name: self.per_class.get(name, 0) for name in self.classes.names
            },
            "classes": self.classes.categories(),
            "seconds_per_image": round(self.seconds / self.processed, 4)
            if self.processed
            else None,
        }


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def collect_inputs(inputs: tuple[str, ...], recursive: bool = False) -> list[InputImage]:
    """Expand files, folders and glob patterns into images with unique relative outputs.

    A folder's images keep their path under the folder, prefixed with the
    folder's name; a file keeps its name. Where two inputs would still map to
    the same output (same name in two places), the later one gets `_2`, `_3`...
    """
    found: list[tuple[Path, PurePosixPath]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for file in sorted(p for p in path.glob(pattern) if p.is_file() and _is_image_name(p)):
                found.append(
                    (file, PurePosixPath(path.resolve().name, *file.relative_to(path).parts))
                )
        elif path.is_file():
            found.append((path, PurePosixPath(path.name)))
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=recursive))
            found.extend((m, PurePosixPath(m.name)) for m in matches if m.is_file())
        else:
            raise CarddUsageError(f"input {item} does not exist")
    if not found:
        raise CarddUsageError(f"no images found in {', '.join(inputs)}")
    taken: set[PurePosixPath] = set()
    images = []
    seen_paths: set[Path] = set()
    for path, relative in found:
        if path.resolve() in seen_paths:
            continue
        seen_paths.add(path.resolve())
        unique, n = relative, 1
        while unique in taken:
            n += 1
            unique = relative.with_name(f"{relative.stem}_{n}{relative.suffix}")
        taken.add(unique)
        images.append(InputImage(path, unique))
    return images


#: What a run writes into its output folder; `--exist-ok` replaces these as a whole.
RUN_OUTPUTS = (
    "vis", "thumbs", "preds", "predictions.csv", "summary.json", "index.html", "infer.log",
)  # fmt: skip


def check_out_dir(out_dir: Path | None, exist_ok: bool) -> None:
    """Refuse an output folder that cannot be used, before minutes of model loading.

    Raises:
        CarddUsageError: a file, or an earlier run's folder without `exist_ok`.
    """
    if out_dir is None:
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise CarddUsageError(f"--out-dir {out_dir} is a file")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not exist_ok:
        raise CarddUsageError(
            f"{out_dir} is not empty: pass --exist-ok to replace its outputs, or another --out-dir"
        )


def prepare_out_dir(out_dir: Path | None, exist_ok: bool) -> Path:
    """The run's output folder: new under `runs/infer`, or the given one if it is free.

    With `exist_ok` an earlier run's outputs there are removed first (other files
    are left alone), so no earlier picture or JSON mixes with this run's.
    """
    import shutil

    check_out_dir(out_dir, exist_ok)
    if out_dir is None:
        out_dir = next_run_dir(Path("runs") / "infer")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        for name in RUN_OUTPUTS:
            earlier = out_dir / name
            if earlier.is_dir() and not earlier.is_symlink():
                shutil.rmtree(earlier)
            elif earlier.exists() or earlier.is_symlink():
                earlier.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)


class OutputWriter:
    """Writes one image's results as soon as they exist: JSON, CSV rows, picture, counts."""

    def __init__(self, out_dir: Path, detector, options: InferOptions) -> None:
        self.out_dir = out_dir
        self.detector = detector
        self.options = options
        self.summary = InferSummary(
            out_dir=out_dir, config_source=detector.config_source, classes=detector.classes
        )
        self._csv_file = open(out_dir / "predictions.csv", "w", newline="")
        self._rows = csv.writer(self._csv_file)
        self._rows.writerow(CSV_HEADER)
        self.index: list[dict] = []  # what index.html lists, in order

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._csv_file.close()

    def failed(self, item: InputImage, reason: str) -> None:
        self.summary.failed.append({"image": str(item.path), "reason": reason})

    def write(self, item: InputImage, array, result: ImageResult) -> None:
        """The image's JSON, CSV rows and (unless --no-vis) picture and thumbnail, and its
        line in index.html."""
        from cardd.draw import draw_detections, encode_image, thumbnail

        json_path = f"preds/{item.relative}.json"
        _write_json(self.out_dir / json_path, result.to_dict())
        self._rows.writerows(result.csv_rows())
        for d in result.detections:
            self.summary.per_class[d.label] += 1
        picture = thumb = None
        if self.options.visualize:
            picture, thumb = f"vis/{item.relative}", f"thumbs/{item.relative}.jpg"
            drawn = draw_detections(array, result.detections, result.classes)
            for path, data in (
                (picture, encode_image(drawn, PurePosixPath(picture).suffix)),
                (thumb, encode_image(thumbnail(drawn), ".jpg", quality=80)),
            ):
                (self.out_dir / path).parent.mkdir(parents=True, exist_ok=True)
                (self.out_dir / path).write_bytes(data)
        self.index.append(
            {
                "image": result.image,
                "detections": [d.to_dict(with_mask=False) for d in result.detections],
                "picture": picture,
                "thumb": thumb,
                "json": json_path,
            }
        )
        self.summary.processed += 1


def _load(path: Path):
    """The decoded image, or the `UnreadableImage` saying why not (raised in the caller)."""
    from cardd.detector import UnreadableImage, load_image

    try:
        return load_image(path)
    except UnreadableImage as error:
        return error


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
            yield from ((item, _load(item.path)) for item in images)
            return
        ahead: deque = deque()
        upcoming = iter(images)
        for item in upcoming:
            ahead.append((item, self._decoders.submit(_load, item.path)))
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
    images are reported and skipped; the summary lists them.
    """
    from tqdm import tqdm

    from cardd.detector import DamageDetector

    if options.batch_size < 1:
        raise CarddUsageError("--batch-size must be >= 1")
    workers = default_workers() if options.workers is None else options.workers
    if workers < 0:
        raise CarddUsageError("--workers must be >= 0")
    images = collect_inputs(options.inputs, options.recursive)
    check_out_dir(options.out_dir, options.exist_ok)
    run_log = logs.RunLog("infer.log")  # mmengine's lines (weights loaded...): the file only
    try:
        detector = DamageDetector.from_options(options)
        if options.half and not detector.device.startswith("cuda"):
            tqdm.write("warning: --half on CPU is slower than float32; it is meant for CUDA GPUs")
        out_dir = prepare_out_dir(options.out_dir, options.exist_ok)
        run_log.write_to(out_dir)
        return _run(options, images, detector, out_dir, workers)
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


def _run(options: InferOptions, images: list, detector, out_dir: Path, workers: int):
    from tqdm import tqdm

    from cardd.detector import UnreadableImage
    from cardd.report import write_infer_index

    began = time.perf_counter()
    lines = logs.verbosity() >= logs.NORMAL and len(images) <= LINES_UP_TO

    def write(item: InputImage, array, result: ImageResult, ms: float, position: int) -> None:
        writer.write(item, array, result)
        if lines:
            tqdm.write(image_line(position, len(images), item, result, ms))
        bar.update(1)

    with (
        OutputWriter(out_dir, detector, options) as writer,
        tqdm(
            total=len(images), unit="img", desc="infer",
            disable=lines or logs.verbosity() == logs.QUIET,
        ) as bar,
        Overlap(workers, window=2 * options.batch_size) as overlap,
    ):  # fmt: skip
        batch: list[tuple[InputImage, object, int]] = []  # (image, array, its position)
        decoded = overlap.decoded(images)
        for position, (item, array) in enumerate(decoded, start=1):
            if isinstance(array, UnreadableImage):
                writer.failed(item, str(array))
                tqdm.write(f"skipped {array}")
                bar.update(1)
            else:
                batch.append((item, array, position))
            if batch and (len(batch) == options.batch_size or position == len(images)):
                started = time.perf_counter()
                try:
                    results = detector.detect(
                        [array for _, array, _ in batch], [str(item.path) for item, _, _ in batch]
                    )
                except Exception as error:  # e.g. out of memory on a huge photo: go on
                    reason = f"the model failed on this batch: {one_line(error)}"
                    for item, _, _ in batch:
                        writer.failed(item, reason)
                    tqdm.write(f"skipped {len(batch)} image(s): {reason}")
                    bar.update(len(batch))
                    results = []
                ms = (time.perf_counter() - started) * 1000 / len(batch)
                for (item, array, at), result in zip(batch, results, strict=False):
                    overlap.write(write, item, array, result, ms, at)
                batch = []
    summary = writer.summary
    summary.seconds = time.perf_counter() - began
    document = summary.to_dict(options, detector.checkpoint)
    _write_json(out_dir / "summary.json", document)
    write_infer_index(out_dir, writer.index, document, detector.classes)
    return summary
