"""COCO AP in both sets of size bins from one COCOeval pass, and the mmdet metric using it.

The CarDD paper's APs/APm/APl use its own size bins (small < 128^2, medium
128^2-256^2, large > 256^2 pixels), not COCO's (32^2, 96^2); reproductions
that use COCO's report a very different APs. COCOeval evaluates every area
range it is given in one pass, so both sets go in at once and the summary
numbers are read off its precision array (what `COCOeval.summarize` does for
the standard ranges).

`CarddCocoMetric` puts the same numbers into mmengine's evaluator, so that
validation inside `cardd train` logs CarDD-bin APs beside COCO's and
`cardd eval` takes every number from the one evaluation of its test loop.
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import TYPE_CHECKING

from cardd.classes import CATEGORY_IDS, CLASSES

if TYPE_CHECKING:
    from pycocotools.coco import COCO

#: Named area ranges (pixels): all, then COCO's three bins, then the CarDD paper's.
AREA_RANGES = {
    "all": (0, 1e10),
    "coco_small": (0, 32**2),
    "coco_medium": (32**2, 96**2),
    "coco_large": (96**2, 1e10),
    "cardd_small": (0, 128**2),
    "cardd_medium": (128**2, 256**2),
    "cardd_large": (256**2, 1e10),
}
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = ("bbox", "segm")


def _percent(value: float) -> float | None:
    """COCOeval's -1 (nothing to score) -> None; else percent, 2 decimals."""
    return None if value < 0 else round(float(value) * 100, 2)


def _mean_precision(precision, iou_index=None, class_index=None, area_index=0) -> float:
    """Mean of COCOeval's precision [IoU, recall, class, area, maxDets] at maxDets=100,
    over the valid (> -1) entries; -1 when there are none."""
    import numpy as np

    values = precision[:, :, :, area_index, -1]
    if iou_index is not None:
        values = values[iou_index]
    if class_index is not None:
        values = values[..., class_index]
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


def _empty_results(gt: COCO) -> COCO:
    """A results object with no detections (pycocotools' `loadRes` fails on `[]`)."""
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": copy.deepcopy(gt.dataset["categories"]),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        empty.createIndex()
    return empty


def _as_rle(segmentation, image: dict) -> dict:
    """A result's segmentation as compressed RLE, which pycocotools' `loadRes` needs:
    polygons (as many tools write them) and uncompressed RLE are converted."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):
        return segmentation
    height, width = image["height"], image["width"]
    if isinstance(segmentation, dict):  # uncompressed RLE: counts as a list
        rle = mask_utils.frPyObjects(segmentation, *segmentation["size"])
    else:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def score_detections(gt: COCO, results: list[dict], iou_type: str) -> dict:
    """AP, AP50, AP75, APs/m/l (COCO bins), `cardd_bins` APs/m/l and AP per class,
    in percent (None where no ground truth falls in a bin), from one COCOeval pass.

    Args:
        gt: the ground truth (pycocotools `COCO`).
        results: COCO-format detections (`image_id`, `category_id`, `score`, and
            `bbox` or `segmentation`: RLE or polygons); not modified.
        iou_type: `bbox` or `segm`. For `segm` the boxes are dropped first, as
            mmdet does: pycocotools would otherwise bin objects by box area.
    """
    from pycocotools.cocoeval import COCOeval

    results = copy.deepcopy(results)
    if iou_type == "segm":
        for result in results:
            result.pop("bbox", None)
            result["segmentation"] = _as_rle(result["segmentation"], gt.imgs[result["image_id"]])
    with contextlib.redirect_stdout(io.StringIO()):
        detections = gt.loadRes(results) if results else _empty_results(gt)
        evaluator = COCOeval(gt, detections, iou_type)
        evaluator.params.catIds = list(CATEGORY_IDS)
        evaluator.params.imgIds = sorted(gt.getImgIds())
        evaluator.params.areaRng = [list(r) for r in AREA_RANGES.values()]
        evaluator.params.areaRngLbl = list(AREA_RANGES)
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"]
    area = {name: index for index, name in enumerate(AREA_RANGES)}
    iou50 = int(round((0.5 - 0.5) / 0.05))
    iou75 = int(round((0.75 - 0.5) / 0.05))

    def ap(prefix: str, size: str) -> float | None:
        return _percent(_mean_precision(precision, area_index=area[f"{prefix}_{size}"]))

    scores: dict = {
        "AP": _percent(_mean_precision(precision)),
        "AP50": _percent(_mean_precision(precision, iou_index=iou50)),
        "AP75": _percent(_mean_precision(precision, iou_index=iou75)),
        "APs": ap("coco", "small"),
        "APm": ap("coco", "medium"),
        "APl": ap("coco", "large"),
        "cardd_bins": {
            "APs": ap("cardd", "small"),
            "APm": ap("cardd", "medium"),
            "APl": ap("cardd", "large"),
        },
        "per_class": {
            name: _percent(_mean_precision(precision, class_index=k))
            for k, name in enumerate(CLASSES)
        },
    }
    return scores


def flat_scores(iou_type: str, scores: dict) -> dict[str, float]:
    """The nested scores as mmengine scalars (fractions as mmdet logs them, -1 for none):
    `bbox_mAP`, `bbox_mAP_50`, ..., `bbox_mAP_s_cardd`, ..., `bbox_<class>_precision`."""

    def fraction(value: float | None) -> float:
        return -1.0 if value is None else round(value / 100, 4)

    names = dict(
        zip(SUMMARY_KEYS, ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l"), strict=True)
    )
    flat = {f"{iou_type}_{names[key]}": fraction(scores[key]) for key in SUMMARY_KEYS}
    for key, suffix in (("APs", "s"), ("APm", "m"), ("APl", "l")):
        flat[f"{iou_type}_mAP_{suffix}_cardd"] = fraction(scores["cardd_bins"][key])
    for name, value in scores["per_class"].items():
        flat[f"{iou_type}_{name.replace(' ', '_')}_precision"] = fraction(value)
    return flat


def _register_metric() -> type:
    import json

    from mmdet.evaluation.metrics import CocoMetric
    from mmdet.registry import METRICS
    from mmengine.logging import MMLogger

    class CarddCocoMetric(CocoMetric):
        """mmdet's `CocoMetric` (same result files, same logged keys) scored by
        `score_detections`: COCO's and the CarDD paper's size bins in one pass.

        `last_scores` holds the nested percent scores of the latest evaluation,
        the form `metrics.json` takes.
        """

        last_scores: dict | None = None

        def compute_metrics(self, results: list) -> dict[str, float]:
            import tempfile
            from pathlib import Path

            if self._coco_api is None:
                raise ValueError("CarddCocoMetric needs the ground truth's ann_file")
            logger = MMLogger.get_current_instance()
            _, predictions = zip(*results, strict=True)
            with contextlib.ExitStack() as stack:
                prefix = self.outfile_prefix
                if prefix is None:
                    prefix = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "r")
                if self.cat_ids is None:
                    self.cat_ids = self._coco_api.get_cat_ids(
                        cat_names=self.dataset_meta["classes"]
                    )
                if self.img_ids is None:
                    self.img_ids = self._coco_api.get_img_ids()
                files = self.results2json(predictions, prefix)
                if self.format_only:
                    return {}
                nested, flat = {}, {}
                for iou_type in self.metrics:
                    with open(files[iou_type]) as f:
                        detections = json.load(f)
                    nested[iou_type] = score_detections(self._coco_api, detections, iou_type)
                    flat.update(flat_scores(iou_type, nested[iou_type]))
                    s = nested[iou_type]
                    logger.info(
                        f"{iou_type}: AP {s['AP']} AP50 {s['AP50']} AP75 {s['AP75']} | "
                        f"COCO bins s/m/l {s['APs']}/{s['APm']}/{s['APl']} | CarDD bins "
                        + "/".join(str(s["cardd_bins"][k]) for k in ("APs", "APm", "APl"))
                    )
            self.last_scores = nested
            return flat

    if "CarddCocoMetric" not in METRICS.module_dict:
        METRICS.register_module(module=CarddCocoMetric)
    return METRICS.module_dict["CarddCocoMetric"]


def register() -> type:
    """Register `CarddCocoMetric` in mmdet's metric registry (idempotent); returns it.

    The configs import `cardd.mmdet_plugins`, which calls this, so that plain
    MMDetection tools can run cardd's configs too.
    """
    return _register_metric()
