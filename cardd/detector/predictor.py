"""`DamageDetector`: load a model once, then ask it about photos.

    detector = DamageDetector(checkpoint="dcn_plus.pth")
    result = detector("claim.jpg")                 # one photo -> ImageResult
    results = detector(["a.jpg", "b.jpg"])         # a list -> one batch
    for result in detector.stream("claims/"):      # folders, globs, URLs: one at a time
        result.save("out/")

One front, one engine class per kind of model file (`BACKENDS`): `TorchBackend`
runs mmdet's own inference path (the config's test pipeline and the model's
`test_step`, as `mmdet.apis.inference_detector` does) and `OnnxBackend` a
`.onnx` export with onnxruntime, no PyTorch. A new engine (TensorRT, say) is a
new class with the same four attributes and `run_batch`. The front adds what a
service needs: images from paths, URLs, numpy arrays or PIL images (EXIF
orientation respected, grayscale and RGBA accepted), one score threshold for
every output, the model's own class names and dataset category ids, mask areas,
and a refusal of a config and checkpoint for different classes (mmdet only warns
and labels with COCO's 80 classes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core import storage
from cardd.core.errors import CarddError
from cardd.core.options import CHECKPOINT, DEVICE, SCORE_THR
from cardd.detector.inputs import InputImage, collect_inputs, load_input
from cardd.detector.onnx_backend import is_onnx_model
from cardd.detector.results import ImageResult
from cardd.structures.classes import ClassSet
from cardd.structures.images import UnreadableImage, load_image
from cardd.structures.results import Detection

if TYPE_CHECKING:
    from cardd.structures.images import ImageInput


def backend_for(checkpoint) -> type:
    """The engine class of a model file: onnxruntime for `.onnx`, else PyTorch."""
    if is_onnx_model(checkpoint):
        from cardd.detector.onnx_backend import OnnxBackend

        return OnnxBackend
    from cardd.detector.torch_backend import TorchBackend

    return TorchBackend


class DamageDetector:
    """Load a cardd model once; call it on photos.

    Args:
        config: config name (`DCN_plus`) or path; None: the one a model file's record
            names, else DCN_plus.
        checkpoint: a checkpoint or export path, `latest` or `best` (of `work_dir`);
            a `.onnx` export runs with onnxruntime, without PyTorch.
        device: `auto`, `cpu`, `cuda` or `cuda:N` (for ONNX: onnxruntime's CUDA
            provider, and TensorRT's where it is installed).
        score_thr: detections below this score are dropped everywhere.
        trust_checkpoint: unpickle this file in full even though it holds more than
            weights and your `cardd train` did not write it.
        work_dir: where `latest`/`best` look (default `work_dirs/<config name>`).
        half: run the model in float16 under autocast (weights stay float32), for
            CUDA GPUs: about half the memory and faster. Boxes then come from float16
            arithmetic (1 px steps from 1024 px on, 2 px from 2048). On CPU it works
            but is slower than float32.

    Example:
        >>> detector = DamageDetector(checkpoint="model.pth")   # a `cardd export` file
        >>> detector = DamageDetector(checkpoint="model.onnx")  # ... or its ONNX form
        >>> result = detector("claim.jpg")
        >>> print(result.summary())                            # 1024x768 2 dent
        >>> for d in result.detections:
        ...     print(d.label, d.score, d.bbox_xyxy)
    """

    def __init__(
        self,
        config: str | Path | None = None,
        checkpoint: str | Path = CHECKPOINT.default,
        device: str = DEVICE.default,
        score_thr: float = SCORE_THR.default,
        trust_checkpoint: bool = False,
        work_dir: str | Path | None = None,
        half: bool = False,
    ) -> None:
        _check_threshold(score_thr)
        self.score_thr = score_thr
        self._lock = threading.Lock()  # one call at a time changes the test settings
        self.backend = backend_for(checkpoint)(
            config, checkpoint, device, half, trust_checkpoint=trust_checkpoint,
            work_dir=work_dir,
        )  # fmt: skip
        self.device: str = self.backend.device
        self.checkpoint: Path = self.backend.path
        self.classes: ClassSet = self.backend.classes
        self.config_source: str = self.backend.config_source
        self.model_file = self.backend.model_file  # path, sha256, classes
        self.model = self.backend.model  # the torch module (None for ONNX)

    @property
    def half(self) -> bool:
        """Whether the model runs in float16 under autocast (settable between calls)."""
        return self.backend.half

    @half.setter
    def half(self, value: bool) -> None:
        self.backend.half = bool(value)

    def __call__(self, source, score_thr: float | None = None):
        """One photo (a path, URL, BGR array or PIL image) -> its `ImageResult`; a list
        of them -> a list of results, run as one batch. The results keep their photo
        (`plot()`, `save()`).

        Raises:
            UnreadableImage: a photo that is missing, truncated or not an image.
        """
        if isinstance(source, (list, tuple)):
            return self._call_many(list(source), score_thr)
        return self._call_many([source], score_thr)[0]

    def _call_many(self, sources: list, score_thr: float | None) -> list[ImageResult]:
        arrays, names, paths = [], [], []
        for source in sources:
            began = time.perf_counter()
            if isinstance(source, (str, Path)):
                array = load_input(storage.local_path(str(source)) or str(source))
                if isinstance(array, UnreadableImage):
                    raise array
                names.append(str(source))
                paths.append(source)
            else:
                array = load_image(source)
                names.append(f"image{len(names)}")
                paths.append(None)
            arrays.append((array, (time.perf_counter() - began) * 1000))
        results = self.detect([a for a, _ in arrays], names, score_thr=score_thr)
        for result, (array, decode_ms), path in zip(results, arrays, paths, strict=True):
            result.pixels, result.path = array, path
            result.timing_ms = {"decode": decode_ms, **result.timing_ms}
        return results

    def stream(
        self,
        source: str | Path | Iterable[str | Path | InputImage],
        *,
        recursive: bool = False,
        batch_size: int = 1,
        score_thr: float | None = None,
        workers: int = 2,
    ) -> Iterator[ImageResult]:
        """Results one at a time, in input order, for files, folders, glob patterns
        and URLs (any fsspec location), or for `InputImage`s already listed: photos
        are decoded `workers` threads ahead of the model, which runs `batch_size` at
        a time. A photo that cannot be read, or a batch the model fails on, gives a
        result with `error` set (and no detections) instead of stopping the stream.

        Raises:
            CarddUsageError: an input that does not exist, or no images at all.
        """
        if batch_size < 1:
            raise CarddError(f"batch_size must be at least 1, got {batch_size}")
        sources = [source] if isinstance(source, (str, Path)) else list(source)
        listed = [s for s in sources if not isinstance(s, InputImage)]
        images = [s for s in sources if isinstance(s, InputImage)]
        if listed:
            images += collect_inputs(tuple(str(s) for s in listed), recursive)
        pending: list[tuple[InputImage, object, float]] = []  # failures wait their turn
        for position, entry in enumerate(_decoded(images, workers), start=1):
            pending.append(entry)
            to_run = sum(not isinstance(array, str) for _, array, _ in pending)
            if to_run == batch_size or position == len(images):
                yield from self._run_batch(pending, score_thr)
                pending = []

    def _run_batch(self, pending: list, score_thr: float | None) -> list[ImageResult]:
        """Results of decoded photos and failures, in their order; the photos run as one
        batch (a model failure fails each of them)."""
        from cardd.core.errors import one_line

        batch = [(item, array, ms) for item, array, ms in pending if not isinstance(array, str)]
        results: dict[int, ImageResult] = {}
        if batch:
            began = time.perf_counter()
            try:
                found = self.detect([a for _, a, _ in batch], [str(i.path) for i, _, _ in batch],
                                    score_thr=score_thr)  # fmt: skip
            except Exception as error:  # e.g. out of memory on a huge photo: go on
                reason = f"the model failed on this batch: {one_line(error)}"
                found = [self._failed(item, reason, score_thr) for item, _, _ in batch]
            model_ms = (time.perf_counter() - began) * 1000 / len(batch)
            for result, (item, array, decode_ms) in zip(found, batch, strict=True):
                result.path, result.name = item.path, item.relative
                if result.ok:
                    result.pixels = array
                    result.timing_ms = {"decode": decode_ms, "model": model_ms}
                results[id(item)] = result
        return [
            results[id(item)] if id(item) in results else self._failed(item, array, score_thr)
            for item, array, _ in pending
        ]

    def _failed(self, item: InputImage, reason: str, score_thr: float | None) -> ImageResult:
        return ImageResult(
            image=str(item.path), width=0, height=0, detections=[], config=self.config_source,
            checkpoint=str(self.checkpoint), score_thr=self._threshold(score_thr),
            classes=self.classes, path=item.path, name=item.relative, error=reason,
        )  # fmt: skip

    def predict(self, image: ImageInput, score_thr: float | None = None) -> list[Detection]:
        """Detections in one image, sorted by score (highest first)."""
        return self.predict_batch([image], score_thr)[0]

    def predict_batch(
        self, images: list[ImageInput], score_thr: float | None = None
    ) -> list[list[Detection]]:
        """Detections for several images, run through the model as one batch."""
        arrays = [load_image(i) for i in images]
        return [r.detections for r in self.detect(arrays, score_thr=score_thr)]

    def detect(
        self,
        arrays: list,
        names: list[str] | None = None,
        score_thr: float | None = None,
        max_detections: int | None = None,
    ) -> list[ImageResult]:
        """`ImageResult`s for decoded BGR arrays, run through the model as one batch.

        The threshold and the number of detections go into the model's own test
        settings for this call, so no mask below the threshold or past the count is
        ever pasted at the photo's size (100 masks of a 48 MP photo are 4.8 GB).

        Args:
            arrays: BGR uint8 images (`load_image`, `decode_image_bytes`).
            names: what each result's `image` says (default: `image0`, `image1`...).
            score_thr: this call's threshold instead of the detector's.
            max_detections: at most this many detections per image (default: the
                model's `max_per_img`; a larger number does not raise it).
        """
        thr = self._threshold(score_thr)
        if max_detections is not None and max_detections < 1:
            raise CarddError(f"max_detections must be at least 1, got {max_detections}")
        names = names if names is not None else [f"image{i}" for i in range(len(arrays))]
        with self._lock:
            found = self.backend.run_batch(arrays, thr, max_detections)
        return [
            ImageResult(
                image=name,
                width=int(array.shape[1]),
                height=int(array.shape[0]),
                detections=self._detections(raw, thr),
                config=self.config_source,
                checkpoint=str(self.checkpoint),
                score_thr=thr,
                classes=self.classes,
            )
            for name, array, raw in zip(names, arrays, found, strict=True)
        ]

    def _threshold(self, score_thr: float | None) -> float:
        thr = self.score_thr if score_thr is None else score_thr
        _check_threshold(thr)
        return thr

    def _detections(self, raw, score_thr: float) -> list[Detection]:
        """One image's raw detections (the backends' `run_batch`) -> its `Detection`s at
        or above `score_thr`, best first; only their masks are made."""
        import numpy as np

        height, width = raw.height, raw.width
        scores = np.asarray(raw.scores, dtype=np.float32)
        ranked = np.argsort(-scores, kind="stable")
        order = [int(i) for i in ranked if scores[i] >= score_thr]
        detections = []
        for i in order:
            x1, y1, x2, y2 = (float(v) for v in raw.boxes[i])
            mask = raw.mask(i)
            area = (
                float(np.count_nonzero(mask))  # 7x a bool array's .sum()
                if mask is not None
                else max(0.0, x2 - x1) * max(0.0, y2 - y1)
            )
            label = int(raw.labels[i])
            detections.append(
                Detection(
                    label=self.classes.names[label],
                    category_id=self.classes.category_id(label),
                    score=float(scores[i]),
                    bbox_xyxy=[x1, y1, x2, y2],
                    area=area,
                    area_fraction=area / float(width * height),
                    mask=mask,
                )
            )
        return detections


def _check_threshold(score_thr: float) -> None:
    if not 0.0 <= score_thr <= 1.0:
        raise CarddError(f"score threshold must be within [0, 1], got {score_thr}")


def _decoded(images: list[InputImage], workers: int) -> Iterator[tuple[InputImage, object, float]]:
    """(image, BGR array or the reason it has none, decode ms), in input order, up to
    2 x `workers` decoded ahead in threads (decoding releases the GIL in OpenCV and
    PIL); with 0 workers, inline."""
    from collections import deque

    def decode(item: InputImage):
        if item.refused:
            return item, item.refused, 0.0
        began = time.perf_counter()
        array = load_input(item.path)
        if isinstance(array, UnreadableImage):
            return item, str(array), 0.0
        return item, array, (time.perf_counter() - began) * 1000

    if workers <= 0:
        yield from (decode(item) for item in images)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, "cardd-decode") as pool:
        ahead: deque = deque()
        for item in images:
            ahead.append(pool.submit(decode, item))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
