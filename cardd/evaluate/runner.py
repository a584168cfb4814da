"""`cardd eval`: COCO metrics of a model, or of any model's predictions, the paper's way.

Two sources, one scoring (`cardd.openmmlab.metrics.score_detections`: COCO AP, AP50, AP75,
APs/m/l in COCO's bins and the CarDD paper's, AP per class, for boxes and masks):

* a checkpoint or `cardd export` file, run through mmengine's test loop with
  `CarddCocoMetric`; it is loaded as inference loads it (`cardd.models.model_file`), so a
  file that does not fit the config, or is for other classes, is refused
  instead of scored;
* a COCO results file from any model (`--results`), checked first.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cardd.core import logs, storage
from cardd.core.devices import runner_device
from cardd.core.errors import CarddError, CarddUsageError
from cardd.evaluate.common import (
    EvalResult,
    analyse,
    check_model_fits,
    ground_truth,
    run_folder,
)
from cardd.evaluate.onnx import evaluate_onnx
from cardd.evaluate.options import SPLITS, EvalOptions
from cardd.evaluate.results import evaluate_results
from cardd.models.configs import set_data_root
from cardd.openmmlab.metrics import IOU_TYPES

EVAL_HOOKS = {
    "timer": dict(type="IterTimerHook"),
    "logger": dict(type="LoggerHook", interval=50),
}


def run_eval(opts: EvalOptions) -> EvalResult:
    """`cardd eval`: a model's evaluation (`evaluate`) or a results file's
    (`evaluate_results`), after checking that the options name one ground truth.

    Returns:
        The metrics and the run folder.
    """
    if sum(x is not None for x in (opts.ann, opts.data_root, opts.data)) > 1:
        raise CarddUsageError("--ann, --data and --data-root all name the ground truth: pass one")
    if opts.results is not None:
        return evaluate_results(opts)
    if opts.ann is not None:
        raise CarddUsageError("--ann goes with --results; for a model, use --data or --data-root")
    return evaluate(opts)


def evaluate(opts: EvalOptions) -> EvalResult:
    """Evaluate a checkpoint or export on a split; write `metrics.json` (and the COCO
    results with `save_coco`).

    Returns:
        The metrics and the run folder.
    """
    if opts.split not in SPLITS:
        raise CarddUsageError("--split must be train, val or test")
    if opts.data is not None and opts.data_root is not None:
        raise CarddUsageError("--data and --data-root both name the dataset: pass one")
    from cardd.detector.onnx_backend import is_onnx_model

    if is_onnx_model(opts.checkpoint):
        return evaluate_onnx(opts)
    from mmengine.runner import Runner

    from cardd.models import checkpoints
    from cardd.models.config_guard import lookup_only
    from cardd.models.model_file import load_weights, open_model
    from cardd.openmmlab.runner import quiet_runner

    device = runner_device(opts.device)
    model_file = open_model(opts.config, opts.checkpoint, opts.work_dir, opts.trust_checkpoint)
    cfg = model_file.cfg
    loader = _test_loader(cfg, opts)
    gt_json = Path(loader.dataset.data_root or "") / loader.dataset.ann_file
    where = f"the {opts.split} split of {opts.data or gt_json}"
    check_model_fits(model_file.classes, ground_truth(gt_json), where)
    loader.dataset.metainfo = model_file.classes.meta()
    with run_folder(opts) as out:

        results_prefix = out / "coco_results"
        cfg.test_dataloader = loader
        cfg.test_cfg = cfg.get("test_cfg") or dict(type="TestLoop")
        cfg.test_evaluator = dict(
            cfg[f"{opts.split}_evaluator"],
            type="CarddCocoMetric",
            outfile_prefix=str(results_prefix),
            ann_file=str(gt_json),
        )
        cfg.work_dir = str(out)
        cfg.load_from = None  # the weights are put in below, strictly
        cfg.resume = False
        cfg.launcher = "none"
        # Training-only parts are not needed to test, and a missing pretrained
        # file or an empty train split must not stop an evaluation.
        for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
            cfg.pop(key, None)
        # Testing needs no training hooks, and a model file's own hooks and visualizer
        # (which may write where their config says) are not run: cardd's are.
        cfg.default_hooks = dict(EVAL_HOOKS)
        cfg.custom_hooks = (
            [dict(type="CarddTestProgressHook")] if logs.verbosity() == logs.NORMAL else []
        )
        # named after the output folder: mmengine keeps one visualizer per name, and a run
        # earlier in the same process (the demo trains first) already holds the config's
        cfg.visualizer = dict(
            type="DetLocalVisualizer",
            vis_backends=[dict(type="LocalVisBackend")],
            name=f"cardd-eval-{out.resolve()}",
        )
        cfg.log_processor = dict(type="LogProcessor", window_size=50, by_epoch=True)

        import cardd.openmmlab.coco_metric  # noqa: F401 (registers CarddCocoMetric)
        checkpoints.install_loader()
        with lookup_only() if model_file.config_from_file else contextlib.nullcontext():
            runner = quiet_runner(Runner).from_cfg(cfg)
            load_weights(runner.model, model_file)
            model_file.release()
            runner.test()
        metric = runner.test_loop.evaluator.metrics[0]

        result = {
            "config": model_file.config_source,
            "checkpoint": str(model_file.path),
            "split": opts.split,
            "data_root": str(loader.dataset.data_root),
            **({"data": str(opts.data)} if opts.data is not None else {}),
            "ann_file": str(gt_json),
            "images": len(metric._coco_api.getImgIds()),
            "device": device,
            **metric.last_scores,
        }
        image_dir = Path(loader.dataset.data_root or "") / loader.dataset.data_prefix.img
        analyse(
            out, result, metric._coco_api, metric.last_evaluators, metric.last_results,
            image_dir, opts.score_thr, opts.iou_thr,
        )  # fmt: skip
        if not opts.save_coco:
            for iou_type in IOU_TYPES:
                Path(f"{results_prefix}.{iou_type}.json").unlink(missing_ok=True)
    return EvalResult(result, storage.shown(opts.out, out))


def _test_loader(cfg, opts: EvalOptions):
    """The model config's dataloader for the split asked for, pointed at `--data` or
    `--data-root` when given.

    Raises:
        CarddError: the dataset has no such split, or the config no test pipeline.
    """
    import copy

    from cardd.models.configs import set_split_files

    if opts.data is not None:
        from cardd.data.spec import load_data_file

        files = load_data_file(opts.data).split(opts.split)
        template = next(
            (cfg.get(f"{s}_dataloader") for s in (opts.split, "test", "val")
             if s != "train" and cfg.get(f"{s}_dataloader")),
            None,
        )  # fmt: skip
        if template is None:
            raise CarddError("the model's config has no test pipeline (no val/test dataloader)")
        cfg[f"{opts.split}_dataloader"] = copy.deepcopy(template)
        if opts.split == "train":  # scored like the others: test-mode pipeline, no shuffle
            cfg.train_dataloader.dataset.test_mode = True
        evaluator = cfg.get(f"{opts.split}_evaluator") or cfg.get("test_evaluator")
        cfg[f"{opts.split}_evaluator"] = copy.deepcopy(evaluator or {})
        set_split_files(cfg, opts.split, files)
        return cfg[f"{opts.split}_dataloader"]
    if opts.data_root is not None:
        set_data_root(cfg, opts.data_root)
    loader = cfg.get(f"{opts.split}_dataloader")
    if not loader or opts.split == "train":
        raise CarddError(
            f"the model's config has no {opts.split} split to evaluate on: pass --data FILE "
            "(a dataset description with that split)"
        )
    return loader


