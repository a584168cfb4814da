"""The PyTorch engine of `DamageDetector`: a checkpoint or `.pth` export built into an
mmdet model, run through mmdet's own test pipeline and `test_step`, as
`mmdet.apis.inference_detector` does.

What it adds to mmdet's path: the model file is opened and checked by
`cardd.models` (weights only, a checked record instead of config text), and the
request's threshold and detection count go into the heads' test settings for one
call, so no mask below them is ever pasted at the photo's size.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cardd.core.devices import resolve_device


class TorchBackend:
    """A model of a checkpoint or export, on `device` (`auto`, `cpu`, `cuda[:N]`)."""

    #: mmdet keeps scores strictly above its threshold, in the scores' own precision
    #: (float16 under `half`); cardd keeps those at or above it: the heads get a
    #: threshold this much lower, and the front cuts exactly.
    MARGIN = 1e-3

    def __init__(self, config, checkpoint, device: str = "auto", half: bool = False,
                 trust_checkpoint: bool = False, work_dir=None) -> None:  # fmt: skip
        from cardd.models.config_guard import lookup_only
        from cardd.models.model_file import build_model, open_model

        self.device = resolve_device(device)
        self.half = half
        self.model_file = open_model(
            config,
            checkpoint,
            work_dir=Path(work_dir) if work_dir is not None else None,
            trust_checkpoint=trust_checkpoint,
        )
        self.path = self.model_file.path
        self.classes = self.model_file.classes
        self.config_source = self.model_file.config_source
        self.model = build_model(self.model_file, self.device)
        self._final_cfgs = self._final_test_cfgs()
        self.model_file.release()
        with lookup_only() if self.model_file.config_from_file else contextlib.nullcontext():
            self.pipeline = self._build_pipeline(self.model.cfg)

    @staticmethod
    def _build_pipeline(cfg):
        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = [dict(step) for step in get_test_pipeline_cfg(cfg)]
        steps[0]["type"] = "mmdet.LoadImageFromNDArray"  # images arrive decoded
        # Inference has no ground truth to load.
        steps = [s for s in steps if s["type"] not in ("LoadAnnotations", "mmdet.LoadAnnotations")]
        return Compose(steps)

    def run_batch(self, arrays: list, score_thr: float, max_detections: int | None) -> list:
        """Raw detections (scores, labels, boxes, masks one at a time) of BGR arrays, one
        batch, at or above `score_thr` less `MARGIN`, at most `max_detections` each."""
        with self._test_settings(score_thr - self.MARGIN, max_detections):
            return [_SampleDetections(sample) for sample in self.forward(arrays)]

    def forward(self, arrays: list) -> list:
        """Raw mmdet `DetDataSample`s for decoded BGR arrays (mmdet's test pipeline)."""
        import torch
        from mmengine.dataset import pseudo_collate

        batch = pseudo_collate(
            [self.pipeline({"img": array, "img_id": index}) for index, array in enumerate(arrays)]
        )
        with (
            torch.inference_mode(),
            torch.autocast(self.device.split(":")[0], dtype=torch.float16, enabled=self.half),
        ):
            return self.model.test_step(batch)

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
                cfg["score_thr"] = score_thr
                if max_detections is not None:
                    cfg["max_per_img"] = min(keep, max_detections)
            yield
        finally:
            for cfg, (thr, keep) in zip(cfgs, saved, strict=True):
                cfg["score_thr"], cfg["max_per_img"] = thr, keep


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
