"""What both export formats share: the options, the result, the self-description.

`cardd.export.run` writes `.pth` exports and `cardd.export.onnx` ONNX graphs; each
imports this, neither the other (the command dispatches in `cardd.export.run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cardd.models.formats import EXPORT_FORMAT


@dataclass
class ExportResult:
    path: Path
    sha256: str
    size_bytes: int
    source: Path
    epoch: int | None
    metrics: dict
    check: dict | None = None  # ONNX: onnxruntime against PyTorch on the check image

    @classmethod
    def of(cls, path: Path, source: Path, epoch, metrics: dict, check=None) -> ExportResult:
        """The result of a written export (its hash and size read back from the file)."""
        from cardd.models import checkpoints

        size = path.stat().st_size
        return cls(path, checkpoints.file_sha256(path), size, source, epoch, metrics, check)


def validation_metrics(work_dir: Path, epoch: int | None) -> dict:
    """The validation scalars mmengine logged for `epoch` in the run's
    `<timestamp>/vis_data/scalars.json` (the newest log that has them), else {}."""
    if epoch is None:
        return {}
    for log in sorted(work_dir.glob("*/vis_data/scalars.json"), reverse=True):
        found = {}
        with open(log) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("step") == epoch and any(k.startswith("coco/") for k in record):
                    found = {k: v for k, v in record.items() if k.startswith("coco/")}
        if found:
            return found
    return {}


def _versions() -> dict:
    import mmcv
    import mmdet
    import mmengine
    import torch

    from cardd import __version__

    versions = {
        "cardd": __version__,
        "mmdet": mmdet.__version__,
        "mmengine": mmengine.__version__,
        "mmcv": mmcv.__version__,
        "torch": torch.__version__,
    }
    # plain str: torch's version is a `TorchVersion`, which weights-only loading refuses
    return {name: str.__str__(version) for name, version in versions.items()}


def describe_export(model_file) -> dict:
    """What an export says of itself (`cardd_export`, and the ONNX metadata): the model
    record, classes, epoch, validation metrics, source file and versions."""
    from cardd.models.record import record_of

    meta = model_file.contents.get("meta") or {}
    earlier = model_file.exported or {}
    epoch = meta.get("epoch", earlier.get("epoch"))
    epoch = int(epoch) if isinstance(epoch, int) else None
    metrics = earlier.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        metrics = validation_metrics(model_file.path.parent, epoch)
    record = model_file.record
    config = Path(model_file.config_source)
    if record is None:  # built from a named config: recorded if it is a shipped one's
        record = record_of(model_file.cfg, model_file.classes, config.stem)
    return {
        "format": EXPORT_FORMAT,
        "model": record,
        **({} if record is not None else {"config_file": config.name}),
        "classes": list(model_file.classes.names),
        "category_ids": list(model_file.classes.ids),
        "epoch": epoch,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "source": model_file.path.name,
        "source_sha256": model_file.sha256,
        "versions": _versions(),
    }
