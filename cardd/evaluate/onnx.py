"""`cardd eval` of an ONNX export: the onnxruntime engine's stream over a split, its
detections scored as a results file's are. Runs without PyTorch, mmcv and mmdet."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from cardd.core import logs, storage
from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.data.layout import image_path
from cardd.evaluate.common import (
    EvalResult,
    check_model_fits,
    ground_truth,
    load_coco,
    run_folder,
    score,
)
from cardd.evaluate.options import EvalOptions
from cardd.structures.classes import annotation_file, image_folder


def _split_files(opts: EvalOptions) -> tuple[Path, Path]:
    """The annotation file and image folder of the split asked for, for a model with no
    config (an ONNX export): from `--data`, else `--data-root`, else data/CarDD_COCO."""
    if opts.data is not None:
        from cardd.data.spec import load_data_file

        files = load_data_file(opts.data).split(opts.split)
        return Path(files.annotations), Path(files.images)
    root = opts.data_root if opts.data_root is not None else Path("data/CarDD_COCO")
    return root / annotation_file(opts.split), root / image_folder(opts.split)


def evaluate_onnx(opts: EvalOptions) -> EvalResult:
    """An ONNX export on a split, through the onnxruntime engine (`DamageDetector`), at
    the model's own test threshold and limit as mmdet's test loop runs a checkpoint;
    its detections scored as `--results` files are (boxes and RLE masks), with the same
    outputs. The split's photos go through `DamageDetector.stream` (decoded ahead of the
    model). Runs without PyTorch, mmcv and mmdet."""
    from tqdm import tqdm

    from cardd.detector.inputs import InputImage
    from cardd.detector.predictor import DamageDetector
    from cardd.structures.results import encode_mask

    detector = DamageDetector(opts.config, opts.checkpoint, opts.device, score_thr=0.0)
    threshold = detector.backend.test_score_thr
    ann, image_dir = _split_files(opts)
    where = f"the {opts.split} split of {opts.data or ann}"
    check_model_fits(detector.classes, ground_truth(ann), where)
    gt = load_coco(ann)
    image_ids = sorted(gt.getImgIds())
    with run_folder(opts) as out:
        boxes, masks = [], []
        shown = logs.verbosity() == logs.NORMAL
        photos = [
            InputImage(image_path(image_dir, gt.imgs[i]["file_name"], f"{ann}: image {i}"),
                       PurePosixPath(gt.imgs[i]["file_name"]))
            for i in image_ids
        ]  # fmt: skip
        stream = detector.stream(photos, score_thr=threshold)
        for image_id, found in tqdm(zip(image_ids, stream, strict=True), total=len(image_ids),
                                    desc="eval", unit="img", disable=not shown):  # fmt: skip
            if not found.ok:
                raise CarddError(found.error)
            for d in found.detections:
                x1, y1, x2, y2 = d.bbox_xyxy
                result = {"image_id": image_id, "category_id": d.category_id,
                          "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d.score}  # fmt: skip
                boxes.append(result)
                if d.mask is not None:
                    masks.append({**result, "segmentation": encode_mask(d.mask)})
        by_type = {"bbox": boxes, **({"segm": masks} if masks else {})}
        metrics = {
            "config": detector.config_source,
            "checkpoint": str(detector.checkpoint),
            "engine": "onnxruntime",
            "split": opts.split,
            **({"data": str(opts.data)} if opts.data is not None else
               {"data_root": str(ann.parent.parent)}),  # fmt: skip
            "ann_file": str(ann),
            "images": len(image_ids),
            "device": detector.device,
        }
        if opts.save_coco:
            for iou_type, results in by_type.items():
                write_file(out / f"coco_results.{iou_type}.json", json.dumps(results))
        score(out, metrics, gt, by_type, image_dir, opts.score_thr, opts.iou_thr)
    return EvalResult(metrics, storage.shown(opts.out, out))


