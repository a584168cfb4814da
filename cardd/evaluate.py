"""`cardd eval`: COCO metrics of a checkpoint, per class and in the CarDD paper's size bins.

The model runs through mmengine's test loop with mmdet's `CocoMetric`, which
dumps the predictions in COCO format; cardd then scores that file with
pycocotools twice: with COCO's area ranges (small < 32^2, medium < 96^2) and
with the CarDD paper's (small < 128^2, medium < 256^2), since the paper's APs/m/l
use the latter and reproductions that use COCO's bins report a very different APs.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from cardd import checkpoints
from cardd.classes import CATEGORY_IDS, CLASSES
from cardd.configs import load_config, resolve_config, set_data_root
from cardd.devices import runner_device
from cardd.errors import CarddError, CarddUsageError
from cardd.runs import next_run_dir

#: Area ranges (pixels) of the CarDD paper: small < 128^2, medium 128^2..256^2, large > 256^2.
CARDD_AREA_RANGES = [[0, 1e10], [0, 128**2], [128**2, 256**2], [256**2, 1e10]]
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")

#: The CarDD paper's DCN+ on the test split (third-party copy of its tables; see the README).
#: Its APs/APm/APl use the paper's own size bins, so they sit beside `cardd_bins`.
PAPER_DCN_PLUS = {
    "bbox": {
        "AP": 60.6,
        "AP50": 78.8,
        "AP75": 64.8,
        "cardd_bins": {"APs": 37.1, "APm": 48.0, "APl": 66.0},
        "per_class": dict(zip(CLASSES, (42.2, 42.3, 29.6, 90.1, 69.5, 90.2), strict=True)),
    },
    "segm": {
        "AP": 57.0,
        "AP50": 77.7,
        "AP75": 58.4,
        "cardd_bins": {"APs": 34.6, "APm": 44.0, "APl": 71.6},
        "per_class": dict(zip(CLASSES, (40.5, 34.3, 16.6, 89.6, 70.8, 90.0), strict=True)),
    },
}


def paper_reference(metrics: dict) -> dict | None:
    """The paper's numbers to print beside these metrics: DCN_plus on the test split only."""
    if metrics.get("split") == "test" and Path(metrics.get("config", "")).stem == "DCN_plus":
        return PAPER_DCN_PLUS
    return None


@dataclass
class EvalOptions:
    config: str = "DCN_plus"
    checkpoint: str = "latest"
    split: str = "test"
    data_root: Path | None = None
    out: Path | None = None
    device: str = "auto"
    save_coco: bool = False
    trust_checkpoint: bool = False


def _percent(value: float) -> float | None:
    return None if value < 0 else round(float(value) * 100, 2)


def load_coco(path: Path):
    """A pycocotools `COCO` of a JSON file, quietly (pycocotools prints a lot)."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _scores(gt, results: list, iou_type: str, area_ranges=None) -> dict:
    """AP, AP50, AP75, APs/m/l and per-class AP (percent) of loaded results."""
    import numpy as np
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {key: 0.0 for key in SUMMARY_KEYS} | {"per_class": dict.fromkeys(CLASSES, 0.0)}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        evaluator.params.catIds = list(CATEGORY_IDS)
        if area_ranges is not None:
            evaluator.params.areaRng = area_ranges
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    scores = {key: _percent(stats[i]) for i, key in enumerate(SUMMARY_KEYS)}
    precision = evaluator.eval["precision"]  # [IoU, recall, class, area, maxDets]
    per_class = {}
    for k, name in enumerate(CLASSES):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = _percent(float(np.mean(values))) if values.size else None
    scores["per_class"] = per_class
    return scores


def coco_scores(gt_json: Path, results_json: Path, iou_type: str, cardd_bins: bool = False) -> dict:
    """AP, AP50, AP75, APs/m/l and per-class AP (percent) of a COCO results file."""
    with open(results_json) as f:
        results = json.load(f)
    return _scores(load_coco(gt_json), results, iou_type, CARDD_AREA_RANGES if cardd_bins else None)


def score_results(gt, results_prefix: Path) -> dict:
    """Both IoU types, both sets of size bins, against one loaded ground truth."""
    metrics = {}
    for iou_type in ("bbox", "segm"):
        path = Path(f"{results_prefix}.{iou_type}.json")
        if not path.is_file():
            continue
        with open(path) as f:
            results = json.load(f)
        scores = _scores(gt, results, iou_type)
        cardd = _scores(gt, results, iou_type, CARDD_AREA_RANGES)
        scores["cardd_bins"] = {key: cardd[key] for key in ("APs", "APm", "APl")}
        metrics[iou_type] = scores
    return metrics


def print_metrics(metrics: dict) -> None:
    """Two rich tables: the summary per IoU type, and AP per class."""
    from rich.table import Table

    from cardd.console import console

    def fmt(value):
        return "-" if value is None else f"{value:.1f}"

    summary = Table(title=f"{metrics['split']} split, {metrics['images']} images")
    for column in ("", *SUMMARY_KEYS, "APs*", "APm*", "APl*"):
        summary.add_column(column, justify="right")
    per_class = Table(title="AP per class")
    per_class.add_column("")
    for name in CLASSES:
        per_class.add_column(name, justify="right")
    reference = paper_reference(metrics)
    rows = [(iou_type, metrics.get(iou_type)) for iou_type in ("bbox", "segm")]
    if reference is not None:
        rows += [(f"{iou_type} (paper DCN+)", reference[iou_type]) for iou_type in ("bbox", "segm")]
    for name, scores in rows:
        if scores is None:
            continue
        bins = scores["cardd_bins"]
        summary.add_row(
            name,
            *(fmt(scores.get(k)) for k in SUMMARY_KEYS),
            *(fmt(bins[k]) for k in ("APs", "APm", "APl")),
        )
        per_class.add_row(name, *(fmt(scores["per_class"][n]) for n in CLASSES))
    out = console()
    out.print(summary)
    out.print("* the CarDD paper's size bins: small < 128², medium 128²–256², large > 256²")
    out.print(per_class)


def evaluate(opts: EvalOptions) -> tuple[dict, Path]:
    """Evaluate a checkpoint on a split; write `metrics.json` (and the COCO results).

    Returns:
        The metrics and the output folder.
    """
    from mmengine.runner import Runner

    if opts.split not in ("val", "test"):
        raise CarddUsageError("--split must be val or test")
    config_path = resolve_config(opts.config)
    device = runner_device(opts.device)
    cfg = load_config(config_path)
    if opts.data_root is not None:
        set_data_root(cfg, opts.data_root)
    work_dir = Path("work_dirs") / config_path.stem
    checkpoint = checkpoints.resolve_checkpoint(opts.checkpoint, work_dir, config_path.stem)

    loader = cfg[f"{opts.split}_dataloader"]
    gt_json = Path(loader.dataset.data_root) / loader.dataset.ann_file
    if not gt_json.is_file():
        raise CarddError(
            f"no {opts.split} annotations at {gt_json}: fetch the dataset with "
            "`cardd download-data` (or pass --data-root)"
        )
    out = opts.out if opts.out is not None else next_run_dir(Path("runs") / "eval")
    if out.exists() and any(out.iterdir()):
        raise CarddUsageError(f"{out} is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    results_prefix = out / "coco_results"
    cfg.test_dataloader = loader
    cfg.test_evaluator = cfg[f"{opts.split}_evaluator"]
    cfg.test_evaluator.outfile_prefix = str(results_prefix)
    cfg.test_evaluator.ann_file = str(gt_json)
    cfg.work_dir = str(out)
    cfg.load_from = str(checkpoint)
    cfg.launcher = "none"
    # mmengine keeps one visualizer per name; a run earlier in this process (the
    # demo trains first) already holds the config's.
    cfg.visualizer.name = f"cardd-eval-{out.resolve()}"
    # Training-only parts are not needed to test, and a missing pretrained
    # file or an empty train split must not stop an evaluation.
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
        cfg.pop(key, None)
    cfg.default_hooks.pop("checkpoint", None)

    checkpoints.install_loader()
    with checkpoints.trusting(checkpoint if opts.trust_checkpoint else None):
        runner = Runner.from_cfg(cfg)
        runner.test()

    gt = load_coco(gt_json)
    metrics = {
        "config": str(config_path),
        "checkpoint": str(checkpoint),
        "split": opts.split,
        "data_root": str(loader.dataset.data_root),
        "images": len(gt.getImgIds()),
        "device": device,
        **score_results(gt, results_prefix),
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    if not opts.save_coco:
        for iou_type in ("bbox", "segm"):
            Path(f"{results_prefix}.{iou_type}.json").unlink(missing_ok=True)
    return metrics, out
