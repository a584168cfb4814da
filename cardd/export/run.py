"""`cardd export`: one self-describing model file to share, loadable weights-only anywhere.

A training checkpoint is a pickle of mmengine objects (optimizer state, message
hub), ~700 MB for DCN_plus, and loading it runs code. An export holds only
what a model needs and what a reader wants to know, all plain data:

    {"state_dict": {name: tensor},                  # fp16 with --half
     "meta": {"dataset_meta": {"classes", "palette", "category_ids"}, "epoch"},  # mmdet's
     "cardd_export": {"format": 2, "model": <record>, "classes": [...],
                      "category_ids": [...],
                      "epoch", "metrics", "source_sha256", "half", "versions": {...}}}

The record (`cardd.models.record`) names the shipped config the model was made from
and the plain data that may differ (classes, thresholds, preprocessing): no config
text, nothing to build but what cardd ships. A model of the user's own config has
`"model": null` and its config's file name: it loads only with `--config` of that file.

`torch.load(path, weights_only=True)` reads it on any machine; cardd's
`infer`, `eval` and `DamageDetector` take it without `--config`; plain
MMDetection loads its weights with `load_checkpoint` into the config that
`cardd.models.record.config_from_record` rebuilds.
"""

from __future__ import annotations

from cardd.core.errors import CarddUsageError
from cardd.core.files import write_file
from cardd.export.common import ExportResult, describe_export
from cardd.export.options import FORMATS, ExportOptions


def export_model(opts: ExportOptions) -> ExportResult:
    """Write the export of a checkpoint; the file appears whole or not at all.

    The weights are put into the model built from the file's record first
    (strictly), so an export that would not load is never written.
    """
    out = opts.out
    kind = opts.format or ("onnx" if out.suffix == ".onnx" else "pth")
    if kind not in FORMATS:
        raise CarddUsageError(f"--format {kind}: choose one of {', '.join(FORMATS)}")
    if out.suffix != f".{kind}":
        raise CarddUsageError(f"--out {out}: name the {kind} export *.{kind}")
    if out.exists() and not opts.force:
        raise CarddUsageError(f"{out} exists: pass --force to replace it, or another --out")
    if kind == "onnx":
        from cardd.export.onnx import export_onnx

        return export_onnx(opts)
    import torch

    from cardd.models.formats import EXPORT_KEY
    from cardd.models.model_file import build_model, open_model

    model_file = open_model(opts.config, opts.checkpoint, opts.work_dir, opts.trust_checkpoint)
    model = build_model(model_file, "cpu")
    state_dict = {
        name: (tensor.half() if opts.half and tensor.is_floating_point() else tensor).clone()
        for name, tensor in model.state_dict().items()
    }
    description = {**describe_export(model_file), "half": opts.half}
    epoch = description["epoch"]
    payload = {
        "state_dict": state_dict,
        "meta": {
            "dataset_meta": model_file.classes.meta(),
            "epoch": epoch,
        },
        EXPORT_KEY: description,
    }
    write_file(out, lambda partial: torch.save(payload, partial))
    return ExportResult.of(out, model_file.path, epoch, description["metrics"])
