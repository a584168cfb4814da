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
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cardd.core import logs, options, storage
from cardd.core.devices import runner_device
from cardd.core.errors import CarddError, CarddUsageError
from cardd.core.files import write_file
from cardd.core.options import Option
from cardd.core.runs import OPTIONS_FILE, RunKind, save_options
from cardd.data.layout import image_path
from cardd.models.configs import set_data_root
from cardd.openmmlab.metrics import IOU_TYPES, SUMMARY_KEYS
from cardd.structures.classes import CLASSES, ClassSet, annotation_file, image_folder

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


#: The hooks of an evaluation, whatever the model file's config says.
EVAL_HOOKS = {
    "timer": dict(type="IterTimerHook"),
    "logger": dict(type="LoggerHook", interval=50),
}


def paper_reference(metrics: dict) -> dict | None:
    """The paper's numbers to print beside these metrics: on the test split, for
    DCN_plus or for another model's results file."""
    if metrics.get("split") != "test":
        return None
    if list((metrics.get("bbox") or metrics.get("segm") or {}).get("per_class", {})) != list(
        CLASSES
    ):
        return None  # another dataset's classes
    if "results" in metrics or Path(metrics.get("config", "")).stem == "DCN_plus":
        return PAPER_DCN_PLUS
    return None


SPLITS = ("train", "val", "test")


@dataclass
class EvalOptions:
    """Everything `cardd eval` takes, each option declared once (`cardd.core.options`):
    a model (config, checkpoint, work dir) or any model's COCO results file (`results`),
    scored on a split of a dataset (`data_root`, `data`) or a ground-truth file (`ann`)."""

    config: str | None = options.MODEL_CONFIG.field()
    checkpoint: str = options.CHECKPOINT.field()
    work_dir: Path | None = options.MODEL_WORK_DIR.field()
    split: str = Option("--split", "The split to score.", "choice", "test", choices=SPLITS).field()
    data_root: Path | None = options.DATA_ROOT.field()
    data: Path | None = options.DATA.field()  # a dataset description file (`cardd.data.spec`)
    results: Path | str | None = Option(
        "--results", "Score this COCO results file of any model instead of running a checkpoint.",
        "file_location",
    ).field()  # fmt: skip
    ann: Path | str | None = Option(
        "--ann", "With --results: the ground-truth COCO JSON to score against.", "file_location"
    ).field()
    out: Path | str | None = Option(
        "--out", "Output folder or URL. Default: runs/eval/exp, exp2, ...", "location"
    ).field()
    device: str = options.DEVICE.field()
    save_coco: bool = Option(
        "--save-coco", "Also keep the COCO-format results JSON.", "flag"
    ).field()
    score_thr: float = options.SCORE_THR.but(
        help="Score threshold of the confusion matrix and the report's gallery (AP uses all)."
    ).field()
    iou_thr: float = Option(
        "--iou-thr", "IoU at which the confusion matrix counts a match.", "float", 0.5, 0.05, 0.95
    ).field()
    exist_ok: bool = options.EXIST_OK.field()
    trust_checkpoint: bool = options.TRUST.field()


def run_eval(opts: EvalOptions) -> tuple[dict, Path | str]:
    """`cardd eval`: a model's evaluation (`evaluate`) or a results file's
    (`evaluate_results`), after checking that the options name one ground truth.

    Returns:
        The metrics and the output folder.
    """
    if sum(x is not None for x in (opts.ann, opts.data_root, opts.data)) > 1:
        raise CarddUsageError("--ann, --data and --data-root all name the ground truth: pass one")
    if opts.results is not None:
        return evaluate_results(opts)
    if opts.ann is not None:
        raise CarddUsageError("--ann goes with --results; for a model, use --data or --data-root")
    return evaluate(opts)


def load_coco(path: Path):
    """A pycocotools `COCO` of a JSON file, quietly (pycocotools prints a lot)."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    from cardd.openmmlab.metrics import number_annotations_from_one

    with contextlib.redirect_stdout(io.StringIO()):
        return number_annotations_from_one(COCO(str(path)))


def _ground_truth(ann: Path) -> ClassSet:
    """The classes of a ground-truth file; a missing or malformed one is refused."""
    from cardd.data.spec import read_categories

    if not ann.is_file():
        raise CarddError(
            f"no annotations at {ann}: fetch the dataset with `cardd download-data` "
            "(or pass --data FILE, --data-root DIR or --ann)"
        )
    return read_categories(ann, image_names=True)


def _check_model_fits(model: ClassSet, truth: ClassSet, where: str) -> None:
    """A model is scored only on a dataset of its own classes, ids and order."""
    if not model.same_classes(truth):
        raise CarddError(
            f"the model predicts {model.describe()}; {where} has {model.difference(truth)} "
            f"({truth.describe()}): evaluate it on the dataset it was trained for"
        )


#: `cardd eval`'s run folders (`cardd.core.runs`): metrics.json marks one; `--exist-ok`
#: replaces what a run writes (mmengine's log folder is named by its start time).
EVAL_RUN = RunKind(
    command="eval",
    flag="--out",
    marks=frozenset({"metrics.json"}),
    outputs=("metrics.json", "report.html", "*.png", "coco_results.*.json", "gallery",
             "[0-9]*_[0-9]*", OPTIONS_FILE),
)  # fmt: skip


@contextlib.contextmanager
def _output(opts: EvalOptions) -> Iterator[Path]:
    """The run's output folder (`EVAL_RUN`'s policy): a local one, or (for a URL) a
    local one uploaded file by file once the evaluation succeeded; the options saved in
    it beside the results."""
    folder = EVAL_RUN.open(opts.out, opts.exist_ok)
    with storage.staged_output(str(folder)) as local:
        local.mkdir(parents=True, exist_ok=True)
        yield local
        save_options(local, opts)


def _write_metrics(out: Path, metrics: dict) -> None:
    write_file(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False))


def _analyse(
    out: Path,
    metrics: dict,
    gt,
    evaluators: dict,
    results: dict[str, list[dict]],
    image_dir: Path | None,
    score_thr: float,
    iou_thr: float,
) -> None:
    """Best-F1 thresholds, PR curves, the confusion matrix and report.html, from the
    evaluation's own COCOeval objects; then metrics.json."""
    from cardd.openmmlab.metrics import best_f1, confusion_matrix, pr_curves
    from cardd.visualize import plots, report

    classes = ClassSet.from_categories(gt.dataset["categories"], "the ground truth")
    for iou_type, evaluator in evaluators.items():
        metrics[iou_type]["best_f1"] = best_f1(evaluator)
        curves = pr_curves(evaluator)
        plots.pr_curve_figure(curves, iou_type, out / f"pr_curve_{iou_type}.png", classes)
    detections = results.get("bbox") or results.get("segm") or []
    matrix, per_image = confusion_matrix(gt, detections, iou_thr, score_thr)
    metrics["classes"] = classes.categories()
    metrics["confusion_matrix"] = {
        "labels": [*classes.names, "background"],
        "matrix": matrix,
        "iou_thr": iou_thr,
        "score_thr": score_thr,
    }
    plots.confusion_figure(matrix, iou_thr, score_thr, out / "confusion_matrix.png", classes)
    _write_metrics(out, metrics)
    report.write_eval_report(
        out, metrics, gt, detections, per_image, image_dir, score_thr, paper_reference(metrics)
    )


def _score(out: Path, metrics: dict, gt, by_type: dict[str, list[dict]],
           image_dir: Path | None, score_thr: float, iou_thr: float) -> None:  # fmt: skip
    """COCO results (per IoU type) scored into `metrics`, then `_analyse`'s outputs: the
    scoring of a `--results` file and of an ONNX export."""
    from cardd.openmmlab.metrics import evaluate_detections, summarize

    evaluators = {}
    for iou_type, results in by_type.items():
        evaluators[iou_type] = evaluate_detections(gt, results, iou_type)
        metrics[iou_type] = summarize(evaluators[iou_type])
    _analyse(out, metrics, gt, evaluators, by_type, image_dir, score_thr, iou_thr)


def print_metrics(metrics: dict) -> None:
    """Two rich tables: the summary per IoU type, and AP per class."""
    from rich.table import Table

    from cardd.core.console import console

    def fmt(value):
        return "-" if value is None else f"{value:.1f}"

    where = f"{metrics['split']} split" if metrics.get("split") else metrics.get("ann_file", "")
    summary = Table(title=f"{where}, {metrics['images']} images")
    for column in ("", *SUMMARY_KEYS, "APs*", "APm*", "APl*"):
        summary.add_column(column, justify="right")
    reference = paper_reference(metrics)
    rows = [(iou_type, metrics.get(iou_type)) for iou_type in ("bbox", "segm")]
    if reference is not None:
        rows += [(f"{iou_type} (paper DCN+)", reference[iou_type]) for iou_type in ("bbox", "segm")]
    rows = [(name, scores) for name, scores in rows if scores is not None]
    names = list(rows[0][1]["per_class"]) if rows else []
    per_class = Table(title="AP per class")
    if len(names) <= 8:  # classes as columns; more: as rows, which stay readable
        per_class.add_column("")
        for name in names:
            per_class.add_column(name, justify="right")
        for name, scores in rows:
            per_class.add_row(name, *(fmt(scores["per_class"][n]) for n in names))
    else:
        per_class.add_column("class")
        for name, _ in rows:
            per_class.add_column(name, justify="right")
        for n in names:
            per_class.add_row(n, *(fmt(scores["per_class"][n]) for _, scores in rows))
    for name, scores in rows:
        bins = scores["cardd_bins"]
        summary.add_row(
            name,
            *(fmt(scores.get(k)) for k in SUMMARY_KEYS),
            *(fmt(bins[k]) for k in ("APs", "APm", "APl")),
        )
    out = console()
    out.print(summary)
    out.print("* the CarDD paper's size bins: small < 128², medium 128²–256², large > 256²")
    out.print(per_class)


def evaluate(opts: EvalOptions) -> tuple[dict, Path]:
    """Evaluate a checkpoint or export on a split; write `metrics.json` (and the COCO
    results with `save_coco`).

    Returns:
        The metrics and the output folder.
    """
    if opts.split not in SPLITS:
        raise CarddUsageError("--split must be train, val or test")
    if opts.data is not None and opts.data_root is not None:
        raise CarddUsageError("--data and --data-root both name the dataset: pass one")
    from cardd.detector.onnx_backend import is_onnx_model

    if is_onnx_model(opts.checkpoint):
        return _evaluate_onnx(opts)
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
    _check_model_fits(model_file.classes, _ground_truth(gt_json), where)
    loader.dataset.metainfo = model_file.classes.meta()
    with _output(opts) as out:

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
        _analyse(
            out, result, metric._coco_api, metric.last_evaluators, metric.last_results,
            image_dir, opts.score_thr, opts.iou_thr,
        )  # fmt: skip
        if not opts.save_coco:
            for iou_type in IOU_TYPES:
                Path(f"{results_prefix}.{iou_type}.json").unlink(missing_ok=True)
    return result, storage.shown(opts.out, out)


def _split_files(opts: EvalOptions) -> tuple[Path, Path]:
    """The annotation file and image folder of the split asked for, for a model with no
    config (an ONNX export): from `--data`, else `--data-root`, else data/CarDD_COCO."""
    if opts.data is not None:
        from cardd.data.spec import load_data_file

        files = load_data_file(opts.data).split(opts.split)
        return Path(files.annotations), Path(files.images)
    root = opts.data_root if opts.data_root is not None else Path("data/CarDD_COCO")
    return root / annotation_file(opts.split), root / image_folder(opts.split)


def _evaluate_onnx(opts: EvalOptions) -> tuple[dict, Path]:
    """An ONNX export on a split, through the onnxruntime engine (`DamageDetector`), at
    the model's own test threshold and limit as mmdet's test loop runs a checkpoint;
    its detections scored as `--results` files are (boxes and RLE masks), with the same
    outputs. Runs without PyTorch, mmcv and mmdet."""
    from tqdm import tqdm

    from cardd.detector.predictor import DamageDetector
    from cardd.structures.images import load_image
    from cardd.structures.results import encode_mask

    detector = DamageDetector(opts.config, opts.checkpoint, opts.device, score_thr=0.0)
    threshold = detector.backend.test_score_thr
    ann, image_dir = _split_files(opts)
    where = f"the {opts.split} split of {opts.data or ann}"
    _check_model_fits(detector.classes, _ground_truth(ann), where)
    gt = load_coco(ann)
    image_ids = sorted(gt.getImgIds())
    with _output(opts) as out:
        boxes, masks = [], []
        shown = logs.verbosity() == logs.NORMAL
        for image_id in tqdm(image_ids, desc="eval", unit="img", disable=not shown):
            name = gt.imgs[image_id]["file_name"]
            path = image_path(image_dir, name, f"{ann}: image {image_id}")
            found = detector.detect([load_image(path)], [name], threshold)[0]
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
        _score(out, metrics, gt, by_type, image_dir, opts.score_thr, opts.iou_thr)
    return metrics, storage.shown(opts.out, out)


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


def evaluate_results(opts: EvalOptions) -> tuple[dict, Path | str]:
    """Score a COCO results file of any model exactly as a checkpoint's evaluation is
    scored; write `metrics.json`. The results, the ground truth (`ann`) and the output
    folder may be URLs (`cardd.core.storage`).

    Returns:
        The metrics and the output folder.
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
    _ground_truth(ann)
    gt = load_coco(ann)
    results, iou_types = _validated_results(results_file, gt, str(opts.results))
    with _output(opts) as out:
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
        _score(out, metrics, gt, by_type, image_dir, opts.score_thr, opts.iou_thr)
    return metrics, storage.shown(opts.out, out)
