"""The inference engine: `DamageDetector` loads a model once and predicts per image.

It runs MMDetection's own inference path (the config's test pipeline and the
model's `test_step`, as `mmdet.apis.inference_detector` does) and adds what a
service needs: images from paths, numpy arrays or PIL images (EXIF orientation
respected, grayscale and RGBA accepted), one score threshold for every output,
CarDD category ids, mask areas and RLE masks, and a refusal of checkpoints
trained for other classes (mmdet only warns and labels with COCO's 80 classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardd import checkpoints
from cardd.classes import CLASSES, PALETTE, label_to_category_id
from cardd.configs import load_config, resolve_config
from cardd.devices import resolve_device
from cardd.errors import CarddError

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


def encode_mask(mask) -> dict:
    """A boolean mask as COCO run-length encoding with a text `counts`."""
    import numpy as np
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


class UnreadableImage(CarddError):
    """An input that is not a decodable image."""


def load_image(image: ImageInput):
    """Any supported input -> a BGR uint8 array (H, W, 3), EXIF orientation applied.

    Raises:
        UnreadableImage: missing, truncated, empty or not an image.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.size == 0:
            raise UnreadableImage(f"array of shape {image.shape} is not an HxWx3 BGR image")
        return np.ascontiguousarray(image[:, :, :3].astype(np.uint8, copy=False))
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                opened.load()  # raises on truncated files
                pil = ImageOps.exif_transpose(opened)
                rgb = pil.convert("RGB")
        except FileNotFoundError:
            raise UnreadableImage(f"{image}: no such file") from None
        except UnidentifiedImageError:
            raise UnreadableImage(f"{image}: not an image file") from None
        except (OSError, ValueError, SyntaxError) as error:
            raise UnreadableImage(f"{image}: {error}") from None
    elif hasattr(image, "convert"):  # a PIL image
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    else:
        raise UnreadableImage(f"unsupported image input of type {type(image).__name__}")
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


class DamageDetector:
    """Load a cardd model once; call `predict` per image (or `predict_batch`).

    Args:
        config: config name (`DCN_plus`) or path.
        checkpoint: checkpoint path, or `latest` (the newest in `work_dirs/<config>`).
        device: `auto`, `cpu`, `cuda` or `cuda:N`.
        score_thr: detections below this score are dropped everywhere.
        trust_checkpoint: unpickle a checkpoint not written by `cardd train`.

    Example:
        >>> detector = DamageDetector("DCN_plus", "work_dirs/DCN_plus/best.pth")
        >>> for d in detector.predict("claim.jpg"):
        ...     print(d.label, d.score, d.bbox_xyxy)
    """

    def __init__(
        self,
        config: str | Path = "DCN_plus",
        checkpoint: str | Path = "latest",
        device: str = "auto",
        score_thr: float = 0.3,
        trust_checkpoint: bool = False,
    ) -> None:
        from mmdet.registry import MODELS
        from mmengine.model.utils import revert_sync_batchnorm
        from mmengine.registry import init_default_scope
        from mmengine.runner import load_checkpoint

        if not 0.0 <= score_thr <= 1.0:
            raise CarddError(f"score threshold must be within [0, 1], got {score_thr}")
        self.config_path = resolve_config(config)
        self.checkpoint = checkpoints.resolve_checkpoint(
            checkpoint, Path("work_dirs") / self.config_path.stem, self.config_path.stem
        )
        self.device = resolve_device(device)
        self.score_thr = score_thr

        cfg = load_config(self.config_path)
        classes = tuple(cfg.get("metainfo", {}).get("classes", ()))
        if classes != CLASSES:
            raise CarddError(f"{self.config_path.name} is not a CarDD config (classes {classes})")
        cfg.model.backbone.init_cfg = None  # weights come from the checkpoint
        # As mmdet's init_detector builds it, minus its fallback to COCO's class
        # names (and the global `warnings.simplefilter` that comes with it).
        init_default_scope(cfg.get("default_scope", "mmdet"))
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        model.cfg = cfg
        checkpoints.install_loader()
        with checkpoints.trusting(self.checkpoint if trust_checkpoint else None):
            try:
                loaded = load_checkpoint(
                    model, str(self.checkpoint), map_location="cpu", strict=True, logger="silent"
                )
            except RuntimeError as error:
                raise CarddError(
                    f"{self.checkpoint} does not fit {self.config_path.name} "
                    f"({str(error).splitlines()[0][:200]})"
                ) from None
        trained_for = checkpoints.checkpoint_classes(loaded)
        if trained_for != CLASSES:
            raise CarddError(
                f"{self.checkpoint} was trained for {len(trained_for or ())} classes "
                f"{list(trained_for or [])[:8]}, not the six CarDD classes; "
                "train one with `cardd train`"
            )
        model.dataset_meta = {"classes": CLASSES, "palette": list(PALETTE)}
        self.model = model.to(self.device).eval()
        self._pipeline = self._build_pipeline(cfg)
        self._visualizer = None

    @staticmethod
    def _build_pipeline(cfg):
        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = [dict(step) for step in get_test_pipeline_cfg(cfg)]
        steps[0]["type"] = "mmdet.LoadImageFromNDArray"  # images arrive decoded
        # Inference has no ground truth to load.
        steps = [s for s in steps if s["type"] not in ("LoadAnnotations", "mmdet.LoadAnnotations")]
        return Compose(steps)

    def predict(self, image: ImageInput) -> list[Detection]:
        """Detections in one image, sorted by score (highest first)."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[ImageInput]) -> list[list[Detection]]:
        """Detections for several images, run through the model as one batch."""
        return [self.to_detections(s) for s in self.infer_batch([load_image(i) for i in images])]

    def infer_batch(self, arrays: list) -> list:
        """Raw mmdet `DetDataSample`s (thresholded) for decoded BGR arrays."""
        import torch
        from mmengine.dataset import pseudo_collate

        batch = pseudo_collate(
            [self._pipeline({"img": array, "img_id": index}) for index, array in enumerate(arrays)]
        )
        with torch.inference_mode():
            samples = self.model.test_step(batch)
        for sample in samples:
            keep = sample.pred_instances.scores >= self.score_thr
            sample.pred_instances = sample.pred_instances[keep]
        return samples

    def to_detections(self, sample) -> list[Detection]:
        """A thresholded `DetDataSample` -> `Detection`s sorted by score."""
        height, width = sample.ori_shape[:2]
        instances = sample.pred_instances
        order = instances.scores.argsort(descending=True)
        scores = instances.scores[order].cpu().numpy()
        labels = instances.labels[order].cpu().numpy()
        boxes = instances.bboxes[order].cpu().numpy()
        masks = instances.masks[order].cpu().numpy() if "masks" in instances else None
        detections = []
        for i in range(len(scores)):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            mask = masks[i] if masks is not None else None
            area = float(mask.sum()) if mask is not None else max(0.0, x2 - x1) * max(0.0, y2 - y1)
            label = int(labels[i])
            detections.append(
                Detection(
                    label=CLASSES[label],
                    category_id=label_to_category_id(label),
                    score=float(scores[i]),
                    bbox_xyxy=[x1, y1, x2, y2],
                    area=area,
                    area_fraction=area / float(width * height),
                    mask=mask,
                )
            )
        return detections

    def draw(self, image_bgr, sample, out_file: Path) -> None:
        """Save the image with boxes, masks, names and scores (mmdet's visualizer)."""
        if self._visualizer is None:
            from mmdet.registry import VISUALIZERS

            cfg = dict(self.model.cfg.visualizer)
            cfg["name"] = f"cardd-{id(self)}"  # mmengine keeps visualizers by unique name
            cfg["vis_backends"] = None
            self._visualizer = VISUALIZERS.build(cfg)
            self._visualizer.dataset_meta = self.model.dataset_meta
        out_file.parent.mkdir(parents=True, exist_ok=True)
        self._visualizer.add_datasample(
            out_file.stem,
            image_bgr[:, :, ::-1],
            sample,
            draw_gt=False,
            show=False,
            pred_score_thr=self.score_thr,
            out_file=str(out_file),
        )
