"""The model files cardd writes, declared once for their writer and their reader.

* A `.pth` export (written by `cardd.export.run`, read by `cardd.models.model_file`):
  a weights-only torch file, `{"state_dict": ..., EXPORT_KEY: {"format": EXPORT_FORMAT,
  "model": <record>, "classes": [...], "category_ids": [...], ...}}`.
* A training checkpoint `cardd train` writes: mmengine's, with the same record in
  `meta[RECORD_KEY]` (`cardd.models.record`).
* An ONNX export (written by `cardd.export.onnx`, read by `cardd.detector.onnx_backend`):
  a graph with `ONNX_INPUTS` and `ONNX_OUTPUTS`, and JSON metadata under
  `ONNX_METADATA_KEY` with `"format": ONNX_FORMAT`.

Nothing here imports torch: the ONNX runtime reads these too.
"""

from __future__ import annotations

#: The key of a `.pth` export's description, and the description's format number.
EXPORT_KEY = "cardd_export"
EXPORT_FORMAT = 2
#: The key of the model record in a training checkpoint's `meta`.
RECORD_KEY = "cardd_model"
#: The ONNX graph's metadata entry, its format number, and the graph's inputs and outputs
#: (image [1, 3, H, W] float32; image_size [2] float32 (mmdet's img_shape: height, width
#: of the resized image, or of its fixed pad); score_thr [] float32; max_detections []
#: int64 -> boxes [N, 4], scores [N], labels [N], masks as `masks.layout` in the
#: metadata says: "box" [N, M, M] probabilities inside each box (Mask R-CNN), "image"
#: [N, H/s, W/s] logits over the input at `masks.stride` s (RTMDet-Ins)).
#: Format 1 (cardd before RTMDet-Ins) is format 2 with box masks and no fixed pad.
ONNX_METADATA_KEY = "cardd"
ONNX_FORMAT = 2
ONNX_READABLE_FORMATS = (1, 2)
ONNX_MASK_LAYOUTS = ("box", "image")
ONNX_INPUTS = ("image", "image_size", "score_thr", "max_detections")
ONNX_OUTPUTS = ("boxes", "scores", "labels", "masks")
