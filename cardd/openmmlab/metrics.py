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


def number_annotations_from_one(gt: COCO) -> COCO:
    """Renumber a ground truth's annotations 1..N (in file order) when any id is below 1.

    COCOeval records a match as the matched object's id and reads 0 as "no match",
    so an object with id 0 (Roboflow's exports start there) could never count as
    found. Only the ids in memory change; the file is not touched.
    """
    annotations = gt.dataset.get("annotations", [])
    if annotations and min(a["id"] for a in annotations) < 1:
        for number, annotation in enumerate(annotations, start=1):
            annotation["id"] = number
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
    return gt


def evaluate_detections(gt: COCO, results: list[dict], iou_type: str):
    """One COCOeval pass (evaluated and accumulated) over all seven area ranges.

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
        evaluator.params.catIds = gt.getCatIds()  # every category (COCOeval sorts them)
        evaluator.params.imgIds = sorted(gt.getImgIds())
        evaluator.params.areaRng = [list(r) for r in AREA_RANGES.values()]
        evaluator.params.areaRngLbl = list(AREA_RANGES)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def class_columns(evaluator) -> list[tuple[str, int]]:
    """(class name, index into COCOeval's class axis) in the ground truth's category
    order (the model's label order); COCOeval itself orders the axis by sorted id."""
    cat_ids = list(evaluator.params.catIds)
    return [
        (category["name"], cat_ids.index(category["id"]))
        for category in evaluator.cocoGt.dataset["categories"]
        if category["id"] in cat_ids
    ]


def score_detections(gt: COCO, results: list[dict], iou_type: str) -> dict:
    """AP, AP50, AP75, APs/m/l (COCO bins), `cardd_bins` APs/m/l and AP per class,
    in percent (None where no ground truth falls in a bin), from one COCOeval pass
    (`evaluate_detections`, whose arguments these are)."""
    return summarize(evaluate_detections(gt, results, iou_type))


def summarize(evaluator) -> dict:
    """The numbers of `score_detections` from an accumulated `evaluate_detections`."""
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
            for name, k in class_columns(evaluator)
        },
    }
    return scores


def pr_curves(evaluator) -> dict:
    """Precision at COCO's 101 recall points, per class, all areas, 100 detections:
    at IoU 0.5 and averaged over IoU 0.5:0.95 (over the IoUs where it is defined).
    Returns `{"recall": [...], "iou50": {class: [...]}, "iou50_95": {class: [...]}}`;
    -1 (no ground truth) becomes None."""
    import numpy as np

    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [IoU, recall, class]
    curves = {"recall": [float(r) for r in evaluator.params.recThrs], "iou50": {}, "iou50_95": {}}
    for name, k in class_columns(evaluator):
        at50 = precision[0, :, k]
        curves["iou50"][name] = None if (at50 < 0).all() else np.clip(at50, 0, 1).tolist()
        values = np.where(precision[:, :, k] < 0, np.nan, precision[:, :, k])
        mean = np.nanmean(values, axis=0) if not np.isnan(values).all() else None
        curves["iou50_95"][name] = None if mean is None else np.nan_to_num(mean).tolist()
    return curves


def best_f1(evaluator, iou_index: int = 0) -> dict:
    """Per class, the score threshold that maximises F1 at IoU 0.5 on this split
    (all areas, up to 100 detections per image), read off COCOeval's own matches:
    `{class: {"threshold", "f1", "precision", "recall"}}`, None where a class has
    no ground truth, no detections or no correct one."""
    import numpy as np

    area_all = evaluator.params.areaRng.index(list(AREA_RANGES["all"]))
    per_class = {}
    n_images = len(evaluator.params.imgIds)
    n_areas = len(evaluator.params.areaRng)
    for name, k in class_columns(evaluator):
        scores, matched, ground_truth = [], [], 0
        for i in range(n_images):
            entry = evaluator.evalImgs[k * n_areas * n_images + area_all * n_images + i]
            if entry is None:
                continue
            keep = ~np.asarray(entry["dtIgnore"][iou_index], dtype=bool)
            scores.extend(np.asarray(entry["dtScores"])[keep].tolist())
            matched.extend((np.asarray(entry["dtMatches"][iou_index]) > 0)[keep].tolist())
            ground_truth += int((~np.asarray(entry["gtIgnore"], dtype=bool)).sum())
        if not ground_truth or not scores:
            per_class[name] = None
            continue
        order = np.argsort(-np.asarray(scores), kind="mergesort")
        tp = np.cumsum(np.asarray(matched)[order])
        fp = np.cumsum(~np.asarray(matched)[order])
        precision, recall = tp / (tp + fp), tp / ground_truth
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        if f1[best] <= 0:  # no true positive at any threshold
            per_class[name] = None
            continue
        per_class[name] = {
            "threshold": round(float(np.asarray(scores)[order][best]), 4),
            "f1": round(float(f1[best]), 4),
            "precision": round(float(precision[best]), 4),
            "recall": round(float(recall[best]), 4),
        }
    return per_class


def confusion_matrix(
    gt: COCO, results: list[dict], iou_thr: float = 0.5, score_thr: float = 0.3
) -> tuple[list[list[int]], dict[int, dict[str, int]]]:
    """Which class each ground-truth object was detected as, by box IoU.

    Rows are the ground truth, columns the prediction, both in the ground truth's
    category order plus a last `background`: the background column counts misses, the
    background row false alarms. Per image, predictions at or above `score_thr` are
    taken best first, and each claims the unclaimed ground-truth box it overlaps most
    (IoU >= `iou_thr`), whatever the classes: a dent predicted as a scratch lands in
    (dent, scratch).

    Returns:
        The (classes + 1) square counts, and per image id its `misses` and `false_alarms`.
    """
    import numpy as np
    from pycocotools import mask as mask_utils

    category_ids = [c["id"] for c in gt.dataset["categories"]]
    size = len(category_ids) + 1
    background = size - 1
    matrix = np.zeros((size, size), dtype=int)
    per_image: dict[int, dict[str, int]] = {}
    by_image: dict[int, list[dict]] = {}
    for result in results:
        if result["score"] >= score_thr:
            by_image.setdefault(result["image_id"], []).append(result)
    for image_id in gt.getImgIds():
        truths = [a for a in gt.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        predictions = sorted(by_image.get(image_id, []), key=lambda r: -r["score"])
        pred_boxes = [_box_of(r, gt.imgs[image_id]) for r in predictions]
        claimed = [False] * len(truths)
        counts = {"misses": 0, "false_alarms": 0}
        if truths and predictions:
            ious = mask_utils.iou(pred_boxes, [a["bbox"] for a in truths], [0] * len(truths))
        for p, prediction in enumerate(predictions):
            column = category_ids.index(prediction["category_id"])
            best, best_iou = -1, iou_thr
            for t in range(len(truths)):
                if not claimed[t] and ious[p][t] >= best_iou:
                    best, best_iou = t, ious[p][t]
            if best < 0:
                matrix[background, column] += 1
                counts["false_alarms"] += 1
            else:
                claimed[best] = True
                matrix[category_ids.index(truths[best]["category_id"]), column] += 1
        for t, truth in enumerate(truths):
            if not claimed[t]:
                matrix[category_ids.index(truth["category_id"]), background] += 1
                counts["misses"] += 1
        per_image[image_id] = counts
    return matrix.tolist(), per_image


def _box_of(result: dict, image: dict) -> list[float]:
    """A result's [x, y, w, h]: its box, else its segmentation's bounding box."""
    from pycocotools import mask as mask_utils

    if "bbox" in result:
        return [float(v) for v in result["bbox"]]
    return [float(v) for v in mask_utils.toBbox(_as_rle(result["segmentation"], image))]


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
