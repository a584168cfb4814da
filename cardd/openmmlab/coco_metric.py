"""`CarddCocoMetric`: mmdet's COCO metric scored in COCO's and the CarDD paper's size bins,
registered in mmdet's METRICS registry as mmdet registers its own."""

from __future__ import annotations

import contextlib
import json

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.logging import MMLogger

from cardd.openmmlab.metrics import (
    evaluate_detections,
    flat_scores,
    number_annotations_from_one,
    summarize,
)
from cardd.openmmlab.registration import register_once


@register_once(METRICS)
class CarddCocoMetric(CocoMetric):
    """mmdet's `CocoMetric` (same result files, same logged keys) scored by
    `score_detections`: COCO's and the CarDD paper's size bins in one pass.

    `last_scores` holds the nested percent scores of the latest evaluation,
    the form `metrics.json` takes; `last_evaluators` and `last_results` its
    COCOeval objects and detections, for the report's plots.
    """

    last_scores: dict | None = None
    last_evaluators: dict | None = None
    last_results: dict | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._coco_api is not None:
            number_annotations_from_one(self._coco_api)

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
            self.last_evaluators, self.last_results = {}, {}
            for iou_type in self.metrics:
                with open(files[iou_type]) as f:
                    detections = json.load(f)
                evaluator = evaluate_detections(self._coco_api, detections, iou_type)
                self.last_evaluators[iou_type] = evaluator
                self.last_results[iou_type] = detections
                nested[iou_type] = summarize(evaluator)
                flat.update(flat_scores(iou_type, nested[iou_type]))
                s = nested[iou_type]
                logger.info(
                    f"{iou_type}: AP {s['AP']} AP50 {s['AP50']} AP75 {s['AP75']} | "
                    f"COCO bins s/m/l {s['APs']}/{s['APm']}/{s['APl']} | CarDD bins "
                    + "/".join(str(s["cardd_bins"][k]) for k in ("APs", "APm", "APl"))
                )
        self.last_scores = nested
        return flat
