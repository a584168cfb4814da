"""The inference engine: `DamageDetector` loads a model once and predicts per image;
`ImageResult` is what cardd says about one image, and every output (`cardd infer`'s
JSON and CSV, `cardd serve`'s answers) is made from it.

It runs MMDetection's own inference path (the config's test pipeline and the
model's `test_step`, as `mmdet.apis.inference_detector` does), or for a `.onnx`
export the onnxruntime engine (`cardd.detector.onnx_backend`, no PyTorch), and adds what a
service needs: images from paths, numpy arrays or PIL images (EXIF orientation
respected, grayscale and RGBA accepted), one score threshold for every output,
the model's own class names and dataset category ids (`ModelFile.classes`),
mask areas and RLE masks, and a refusal of a config and checkpoint for
different classes (mmdet only warns and labels with COCO's 80 classes).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardd.core.devices import resolve_device
from cardd.core.errors import CarddError
from cardd.detector.onnx_backend import is_onnx_model
from cardd.structures.classes import ClassSet

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

    ImageInput = str | Path | np.ndarray | PILImage


@dataclass
class Detection:
    """One damaged region: what, how sure, where (original-image pixels)."""

    label: str
    category_id: int
    score: float
    bbox_xyxy: list[float]
    area: float  # mask pixels, or box area when the model predicts no mask
    area_fraction: float  # area / (width * height)
    mask: Any = field(default=None, repr=False)  # bool array (H, W) or None

    def to_dict(self, with_mask: bool = True) -> dict:
        """JSON-ready dict; the mask as COCO RLE (`{"size": [h, w], "counts": str}`)."""
        out = {
            "label": self.label,
            "category_id": self.category_id,
            "score": self.score,
            "bbox_xyxy": [round(v, 2) for v in self.bbox_xyxy],
            "area": round(self.area, 2),
            "area_fraction": round(self.area_fraction, 6),
        }
        if with_mask and self.mask is not None:
            out["mask"] = encode_mask(self.mask)
        return out


CSV_HEADER = (
    "image",
    "label",
    "category_id",
    "score",
    "x1",
    "y1",
    "x2",
    "y2",
    "area",
    "area_fraction",
)


@dataclass
class ImageResult:
    """One image's detections and where they came from: the single source of the
    per-image JSON (`to_dict`), the CSV rows (`csv_rows`) and the service's answers."""

    image: str
    width: int
    height: int
    detections: list[Detection]
    config: str
    checkpoint: str
    score_thr: float
    classes: ClassSet = field(repr=False)  # the model's: names, ids and colours to draw with

    def to_dict(self, with_masks: bool = True) -> dict:
        """The JSON document of `cardd infer`'s preds/*.json and `POST /v1/detect`."""
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "config": self.config,
            "checkpoint": self.checkpoint,
            "score_thr": self.score_thr,
            "detections": [d.to_dict(with_mask=with_masks) for d in self.detections],
        }

    def csv_rows(self) -> list[list]:
        """One row per detection, in `CSV_HEADER`'s columns."""
        return csv_rows(self.to_dict(with_masks=False))


def csv_rows(document: dict) -> list[list]:
    """The CSV rows of one image's JSON document (`ImageResult.to_dict`, or a preds/*.json
    read back): the same text either way, as the JSON keeps what the CSV shows."""
    return [
        [
            document["image"],
            d["label"],
            d["category_id"],
            d["score"],
            *(f"{v:.2f}" for v in d["bbox_xyxy"]),
            f"{d['area']:.2f}",
            f"{d['area_fraction']:.6f}",
        ]
        for d in document["detections"]
    ]


def encode_mask(mask) -> dict:
    """A boolean mask as COCO run-length encoding with a text `counts`.

    pycocotools encodes column by column and needs the whole image in column-major
    order: a transposed copy and a scan of every pixel, 4 ms per mask of a 3-megapixel
    photo, 0.4 s for the 100 masks DCN_plus may keep. A detection's mask fills a
    small part of the photo, so the runs are found in the smallest rectangle that
    holds it, placed in the image, and compressed by pycocotools (1 ms): the same
    bytes as `pycocotools.mask.encode` (tested)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    height, width = mask.shape
    counts = _run_lengths(np.asarray(mask, dtype=bool))
    rle = mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def _run_lengths(mask) -> list[int]:
    """COCO's uncompressed counts of a boolean mask: alternating runs of 0s and 1s in
    column-major order, starting with 0s (a count of 0 if the first pixel is set)."""
    import numpy as np

    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return [height * width]
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top : rows[-1] + 1, left : cols[-1] + 1]
    # each crop column between two 0s: +1 where a run of 1s starts, -1 after it ends
    padded = np.zeros((crop.shape[1], crop.shape[0] + 2), dtype=np.int8)
    padded[:, 1:-1] = crop.T
    steps = np.diff(padded, axis=1)
    start_col, start_row = np.nonzero(steps == 1)
    end_col, end_row = np.nonzero(steps == -1)  # row-major: pairs with the starts
    starts = (left + start_col).astype(np.int64) * height + top + start_row
    ends = (left + end_col).astype(np.int64) * height + top + end_row
    # a run reaching the bottom of the image continues at the top of the next column
    split = starts[1:] != ends[:-1]
    starts = np.concatenate([starts[:1], starts[1:][split]])
    ends = np.concatenate([ends[:-1][split], ends[-1:]])
    edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, height * width
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    counts = np.diff(edges)
    return (counts[:-1] if counts[-1] == 0 else counts).tolist()


class UnreadableImage(CarddError):
    """An input that is not a decodable image (`too_large`: more pixels than allowed)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


#: Pixels above which an image is refused from its header, before decoding: a
#: decompression bomb (a few KB of PNG that decode to gigabytes) stops here.
MAX_PIXELS = 178_956_970  # PIL's own error threshold (2 x Image.MAX_IMAGE_PIXELS)


def _decode(opened, name: str, max_pixels: int):
    """A PIL image opened lazily -> RGB PIL image, refusing too many pixels first."""
    from PIL import ImageOps

    _check_pixels(opened, name, max_pixels)
    opened.load()  # raises on truncated files
    return ImageOps.exif_transpose(opened).convert("RGB")


def _check_pixels(opened, name: str, max_pixels: int) -> None:
    width, height = opened.size
    if width * height > max_pixels:
        raise UnreadableImage(
            f"{name}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}",
            too_large=True,
        )


def _orientation(opened) -> int:
    try:
        return int(opened.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block: PIL's exif_transpose ignores it too
        return 1


@contextlib.contextmanager
def _image_errors(name: str, max_pixels: int):
    """PIL's exceptions about a file -> `UnreadableImage` with a one-line reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except FileNotFoundError:
        raise UnreadableImage(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"{name}: not an image file") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImage(
            f"{name}: over the limit of {max_pixels} pixels ({error})", too_large=True
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(f"{name}: {error}") from None


def decode_image_bytes(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "image"):
    """An image file's bytes -> a BGR uint8 array, EXIF orientation applied; the
    pixel count is checked from the header before anything is decoded.

    A photo is decoded once, into the array returned: an 8-bit JPEG or PNG (what
    phones and browsers send) by OpenCV, straight to BGR, turned by its EXIF
    orientation as PIL turns it. Anything else goes through PIL, which makes three
    intermediate copies (144 MB each at 48 MP).

    Raises:
        UnreadableImage: empty, truncated, not an image, or too many pixels.
    """
    import io

    import numpy as np
    from PIL import Image

    if not data:
        raise UnreadableImage(f"{name}: empty file")
    with _image_errors(name, max_pixels), Image.open(io.BytesIO(data)) as opened:
        _check_pixels(opened, name, max_pixels)
        if not _opencv_decodes_as_pil(opened):
            return _pil_to_bgr(_decode(opened, name, max_pixels))
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is not None:
        return bgr
    return decode_image_bytes_with_pil(data, max_pixels, name)  # truncated...: PIL says why


def decode_image_bytes_with_pil(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "image"):
    """`decode_image_bytes` through PIL alone: the reference the OpenCV path matches."""
    import io

    from PIL import Image

    with _image_errors(name, max_pixels), Image.open(io.BytesIO(data)) as opened:
        return _pil_to_bgr(_decode(opened, name, max_pixels))


def _pil_to_bgr(rgb):
    import numpy as np

    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _opencv_decodes_as_pil(opened) -> bool:
    """Whether OpenCV decodes this file to what PIL would: an 8-bit RGB or grayscale
    JPEG (OpenCV applies the EXIF orientation of JPEGs), or such a PNG without an
    orientation to apply."""
    if opened.mode not in ("RGB", "L"):
        return False
    return opened.format == "JPEG" or (opened.format == "PNG" and _orientation(opened) == 1)


def load_image(image: ImageInput):
    """Any supported input -> a BGR uint8 array (H, W, 3), EXIF orientation applied.

    Raises:
        UnreadableImage: missing, truncated, empty or not an image.
    """
    import numpy as np
    from PIL import Image, ImageOps

    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.size == 0:
            raise UnreadableImage(f"array of shape {image.shape} is not an HxWx3 BGR image")
        if image.dtype != np.uint8:
            # a cast would make a [0, 1] float image black and wrap a uint16 one
            raise UnreadableImage(
                f"array of dtype {image.dtype}: pass 8-bit BGR pixels (uint8 0..255), e.g. "
                "(image * 255).round().astype(np.uint8) for floats in [0, 1]"
            )
        return np.ascontiguousarray(image[:, :, :3])
    if isinstance(image, (str, Path)):
        with _image_errors(str(image), MAX_PIXELS), Image.open(image) as opened:
            rgb = _decode(opened, str(image), MAX_PIXELS)
    elif hasattr(image, "convert"):  # a PIL image
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    else:
        raise UnreadableImage(f"unsupported image input of type {type(image).__name__}")
    return _pil_to_bgr(rgb)


class DamageDetector:
    """Load a cardd model once; call `predict` per image (or `predict_batch`).

    Args:
        config: config name (`DCN_plus`) or path; None: the one inside a
            `cardd export` file, else DCN_plus.
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
        >>> for d in detector.predict("claim.jpg"):
        ...     print(d.label, d.score, d.bbox_xyxy)
    """

    def __init__(
        self,
        config: str | Path | None = None,
        checkpoint: str | Path = "latest",
        device: str = "auto",
        score_thr: float = 0.3,
        trust_checkpoint: bool = False,
        work_dir: str | Path | None = None,
        half: bool = False,
    ) -> None:
        if not 0.0 <= score_thr <= 1.0:
            raise CarddError(f"score threshold must be within [0, 1], got {score_thr}")
        self.score_thr = score_thr
        self.half = half
        self._lock = threading.Lock()  # one call at a time changes the test settings
        self.onnx = None
        if is_onnx_model(checkpoint):
            self._open_onnx(config, Path(checkpoint), device, half)
            return
        from cardd.models.config_guard import lookup_only
        from cardd.models.model_file import build_model, open_model

        self.device = resolve_device(device)
        self.model_file = open_model(
            config,
            checkpoint,
            work_dir=Path(work_dir) if work_dir is not None else None,
            trust_checkpoint=trust_checkpoint,
        )
        self.checkpoint = self.model_file.path
        self.classes: ClassSet = self.model_file.classes
        self.config_source = self.model_file.config_source
        self.model = build_model(self.model_file, self.device)
        self._final_cfgs = self._final_test_cfgs()
        self.model_file.release()
        with lookup_only() if self.model_file.config_from_file else contextlib.nullcontext():
            self._pipeline = self._build_pipeline(self.model.cfg)

    def _open_onnx(self, config, path: Path, device: str, half: bool) -> None:
        """An ONNX export, run by onnxruntime (`cardd.detector.onnx_backend`): no PyTorch needed."""
        from cardd.detector.onnx_backend import OnnxModel, check_options

        check_options(config, half)
        self.onnx = OnnxModel(path, device)
        self.model_file = self.onnx  # path, sha256, classes, as a `ModelFile` has them
        self.model = None
        self.device = self.onnx.device
        self.checkpoint = self.onnx.path
        self.classes = self.onnx.classes
        self.config_source = self.onnx.config_source

    @classmethod
    def from_options(cls, options) -> DamageDetector:
        """The detector a command's options describe (`InferOptions`, `ServeOptions`:
        anything with config, checkpoint, device, score_thr, trust_checkpoint,
        work_dir and half)."""
        return cls(
            options.config,
            options.checkpoint,
            options.device,
            options.score_thr,
            trust_checkpoint=options.trust_checkpoint,
            work_dir=options.work_dir,
            half=options.half,
        )

    @staticmethod
    def _build_pipeline(cfg):
        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = [dict(step) for step in get_test_pipeline_cfg(cfg)]
        steps[0]["type"] = "mmdet.LoadImageFromNDArray"  # images arrive decoded
        # Inference has no ground truth to load.
        steps = [s for s in steps if s["type"] not in ("LoadAnnotations", "mmdet.LoadAnnotations")]
        return Compose(steps)

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
        thr = self.score_thr if score_thr is None else score_thr
        if not 0.0 <= thr <= 1.0:
            raise CarddError(f"score threshold must be within [0, 1], got {thr}")
        if max_detections is not None and max_detections < 1:
            raise CarddError(f"max_detections must be at least 1, got {max_detections}")
        names = names if names is not None else [f"image{i}" for i in range(len(arrays))]
        with self._lock:
            if self.onnx is not None:
                # mmdet keeps scores above its threshold: the same margin as `_test_settings`
                found = [self.onnx.run(array, thr - 1e-3, max_detections) for array in arrays]
            else:
                with self._test_settings(thr, max_detections):
                    found = [_SampleDetections(sample) for sample in self._forward(arrays)]
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

    def _final_test_cfgs(self) -> list:
        """The test settings of the heads that give the final detections (those with
        both `score_thr` and `max_per_img`: mmdet's RoI and single-stage heads; an RPN
        has no `score_thr`, and its proposals are left alone)."""
        found: dict[int, Any] = {}
        for module in self.model.modules():
            cfg = getattr(module, "test_cfg", None)
            if hasattr(cfg, "keys") and "score_thr" in cfg and "max_per_img" in cfg:
                found[id(cfg)] = cfg
        return list(found.values())

    @contextlib.contextmanager
    def _test_settings(self, score_thr: float, max_detections: int | None):
        cfgs = self._final_cfgs
        saved = [(cfg["score_thr"], cfg["max_per_img"]) for cfg in cfgs]
        try:
            for cfg, (_, keep) in zip(cfgs, saved, strict=True):
                # mmdet keeps scores strictly above its threshold, in the scores' own
                # precision (float16 under --half); cardd keeps those at or above it:
                # a margin below, then `_detections` cuts exactly.
                cfg["score_thr"] = score_thr - 1e-3
                if max_detections is not None:
                    cfg["max_per_img"] = min(keep, max_detections)
            yield
        finally:
            for cfg, (thr, keep) in zip(cfgs, saved, strict=True):
                cfg["score_thr"], cfg["max_per_img"] = thr, keep

    def _forward(self, arrays: list) -> list:
        """Raw mmdet `DetDataSample`s for decoded BGR arrays (mmdet's test pipeline)."""
        import torch
        from mmengine.dataset import pseudo_collate

        batch = pseudo_collate(
            [self._pipeline({"img": array, "img_id": index}) for index, array in enumerate(arrays)]
        )
        with (
            torch.inference_mode(),
            torch.autocast(self.device.split(":")[0], dtype=torch.float16, enabled=self.half),
        ):
            return self.model.test_step(batch)

    def _detections(self, raw, score_thr: float) -> list[Detection]:
        """One image's raw detections (`_SampleDetections`, the ONNX engine's
        `RawDetections`) -> its `Detection`s at or above `score_thr`, best first; only
        their masks are made."""
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


class _SampleDetections:
    """An mmdet `DetDataSample`'s predictions as numpy arrays, masks one at a time
    (indexing all masks at once would copy every one of them)."""

    def __init__(self, sample) -> None:
        self.height, self.width = sample.ori_shape[:2]
        instances = sample.pred_instances
        self.scores = instances.scores.float().cpu().numpy()  # float16 under --half
        self.labels = instances.labels.cpu().numpy()
        self.boxes = instances.bboxes.float().cpu().numpy()
        self._masks = instances.masks.cpu() if "masks" in instances else None

    def mask(self, index: int):
        return self._masks[index].numpy() if self._masks is not None else None
