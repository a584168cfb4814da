"""`cardd eval --results`: any model's COCO results file, checked, then scored exactly as a
model's evaluation is."""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

from cardd.core import storage
from cardd.core.errors import CarddError
from cardd.evaluate.common import (
    EvalResult,
    ground_truth,
    load_coco,
    run_folder,
    score,
)
from cardd.evaluate.options import EvalOptions
from cardd.openmmlab.metrics import IOU_TYPES
from cardd.structures.classes import ClassSet, annotation_file


def _is_segmentation(value) -> bool:
    """COCO RLE (`{"size": [h, w], "counts": str | list}`) or polygons (lists of >= 6 numbers)."""
    if isinstance(value, dict):
        return isinstance(value.get("size"), list) and isinstance(value.get("counts"), (str, list))
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(p, list) and len(p) >= 6 and all(isinstance(v, (int, float)) for v in p)
            for p in value
        )
    )


def _validated_results(path: Path, gt, shown: str | None = None) -> tuple[list[dict], list[str]]:
    """A COCO results file, checked against the ground truth; and the IoU types it
    can be scored for (`bbox` when every result has a box, `segm` a segmentation).

    Raises:
        CarddError: one line naming what is wrong.
    """
    try:
        with open(path) as f:
            results = json.load(f)
    except OSError as error:
        raise CarddError(f"cannot read {shown or path}: {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CarddError(f"{shown or path} is not JSON ({error})") from None
    if not isinstance(results, list):
        raise CarddError(
            f"{shown or path} is not a list of COCO results (a JSON {type(results).__name__}); "
            "expected [{image_id, category_id, score, bbox and/or segmentation}, ...]"
        )
    if not results:
        return [], list(IOU_TYPES)
    for index, result in enumerate(results):
        missing = [
            key
            for key in ("image_id", "category_id", "score")
            if not isinstance(result, dict) or key not in result
        ]
        if missing or not ("bbox" in result or "segmentation" in result):
            missing = missing or ["bbox or segmentation"]
            raise CarddError(f"{shown or path}: result {index} lacks {', '.join(missing)}")
        box = result.get("bbox")
        if box is not None and not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
        ):
            raise CarddError(
                f"{shown or path}: result {index} has bbox {box!r}, not [x, y, width, height]"
            )
        segmentation = result.get("segmentation")
        if segmentation is not None and not _is_segmentation(segmentation):
            raise CarddError(
                f"{shown or path}: result {index} has a segmentation that is neither RLE "
                "({size, counts}) nor a list of polygons"
            )
        if not isinstance(result["image_id"], int):
            raise CarddError(f"{shown or path}: result {index} has image_id {result['image_id']!r}")
        score = result["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(
            score
        ):
            raise CarddError(f"{shown or path}: result {index} has a score that is not a number")
    truth = ClassSet.from_categories(gt.dataset["categories"], "the ground truth")
    bad_categories = sorted(
        {repr(r["category_id"]) for r in results if r["category_id"] not in truth.ids}
    )
    if bad_categories:
        raise CarddError(
            f"{shown or path}: category ids {', '.join(bad_categories[:10])} are not the ground "
            f"truth's ({truth.describe(10)}); map the model's labels to these ids"
        )
    known = set(gt.getImgIds())
    unknown = sorted({repr(r["image_id"]) for r in results if r["image_id"] not in known})
    if unknown:
        count = sum(r["image_id"] not in known for r in results)
        raise CarddError(
            f"{shown or path}: {count} of {len(results)} results name {len(unknown)} image ids "
            f"absent from the ground truth (e.g. {', '.join(unknown[:5])}); "
            "wrong split or another id numbering?"
        )
    for index, result in enumerate(results):
        # pycocotools allocates an RLE's `size` as given: 20000x20000 from 241 bytes
        segmentation = result.get("segmentation")
        if isinstance(segmentation, dict):
            image = gt.imgs[result["image_id"]]
            expected = [image.get("height"), image.get("width")]
            if segmentation["size"] != expected:
                raise CarddError(
                    f"{shown or path}: result {index} has an RLE of size "
                    f"{segmentation['size'][:2]!r}; its image {result['image_id']} is "
                    f"{expected!r} (height, width)"
                )
    iou_types = [
        iou_type
        for iou_type, key in (("bbox", "bbox"), ("segm", "segmentation"))
        if all(key in r for r in results)
    ]
    with_masks = sum("segmentation" in r for r in results)
    if 0 < with_masks < len(results) and "bbox" not in iou_types:
        raise CarddError(
            f"{shown or path}: {with_masks} of {len(results)} results carry a segmentation and the "
            "others no box: every result needs a bbox, or every one a segmentation"
        )
    return results, iou_types


def evaluate_results(opts: EvalOptions) -> EvalResult:
    """Score a COCO results file of any model exactly as a checkpoint's evaluation is
    scored; write `metrics.json`. The results, the ground truth (`ann`) and the output
    folder may be URLs (`cardd.core.storage`).

    Returns:
        The metrics and the run folder.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cardd-fetch-") as fetched:
        results = storage.fetch(opts.results, Path(fetched) / "results")
        ann = storage.fetch(opts.ann, Path(fetched) / "ann") if opts.ann is not None else None
        return _evaluate_results(opts, results, ann)


def _evaluate_results(opts: EvalOptions, results_file: Path, ann_file: Path | None):
    image_dir = None
    if ann_file is not None:
        ann = ann_file
    elif opts.data is not None:
        from cardd.data.spec import load_data_file

        files = load_data_file(opts.data).split(opts.split)
        ann, image_dir = files.annotations, files.images
    else:
        ann = (opts.data_root or Path("data/CarDD_COCO")) / annotation_file(opts.split)
    ground_truth(ann)
    gt = load_coco(ann)
    results, iou_types = _validated_results(results_file, gt, str(opts.results))
    with run_folder(opts) as out:
        split = opts.split
        if opts.ann is not None and opts.data is None:
            name = PurePosixPath(str(opts.ann)).name
            split = next(
                (s for s in ("train", "val", "test") if name == f"instances_{s}2017.json"), ""
            )
        metrics = {
            "results": str(opts.results),
            "ann_file": str(ann),
            "split": split or None,
            "images": len(gt.getImgIds()),
            "detections": len(results),
        }
        if image_dir is None and split and storage.local_path(opts.ann or ann) is not None:
            image_dir = ann.parent.parent / f"{split}2017"
        by_type = {iou_type: results for iou_type in iou_types}
        score(out, metrics, gt, by_type, image_dir, opts.score_thr, opts.iou_thr)
    return EvalResult(metrics, storage.shown(opts.out, out))
