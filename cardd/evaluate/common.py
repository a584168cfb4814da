"""What every way of `cardd eval` shares: the options, the ground truth, the run
folder, the scoring and its report, the paper's numbers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cardd.core import storage
from cardd.core.errors import CarddError
from cardd.core.files import write_file
from cardd.core.runs import OPTIONS_FILE, RunKind, save_options
from cardd.evaluate.options import EvalOptions
from cardd.openmmlab.metrics import SUMMARY_KEYS
from cardd.structures.classes import CLASSES, ClassSet

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


@dataclass
class EvalResult:
    """What an evaluation found and where it wrote it: `metrics` is `metrics.json`'s
    document (AP values in percent, as the paper reports them; `None` where a size bin
    holds no objects), `out` the run folder (a path, or the URL asked for)."""

    metrics: dict
    out: Path | str

    def ap(self, iou_type: str = "segm", key: str = "AP") -> float | None:
        """One number of the evaluation: `key` (AP, AP50, AP75, APs...) of `iou_type`
        (bbox or segm); None where the model predicts no masks or the bin is empty."""
        return (self.metrics.get(iou_type) or {}).get(key)

    @property
    def report(self) -> str:
        """The report's location (`report.html` in the run folder)."""
        return storage.join(self.out, "report.html")


def load_coco(path: Path):
    """A pycocotools `COCO` of a JSON file, quietly (pycocotools prints a lot)."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    from cardd.openmmlab.metrics import number_annotations_from_one

    with contextlib.redirect_stdout(io.StringIO()):
        return number_annotations_from_one(COCO(str(path)))


def ground_truth(ann: Path) -> ClassSet:
    """The classes of a ground-truth file; a missing or malformed one is refused."""
    from cardd.data.spec import read_categories

    if not ann.is_file():
        raise CarddError(
            f"no annotations at {ann}: fetch the dataset with `cardd download-data` "
            "(or pass --data FILE, --data-root DIR or --ann)"
        )
    return read_categories(ann, image_names=True)


def check_model_fits(model: ClassSet, truth: ClassSet, where: str) -> None:
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
def run_folder(opts: EvalOptions) -> Iterator[Path]:
    """The run's output folder (`EVAL_RUN`'s policy): a local one, or (for a URL) a
    local one uploaded file by file once the evaluation succeeded; the options saved in
    it beside the results."""
    folder = EVAL_RUN.open(opts.out, opts.exist_ok)
    with storage.staged_output(str(folder)) as local:
        local.mkdir(parents=True, exist_ok=True)
        yield local
        save_options(local, opts)


def write_metrics(out: Path, metrics: dict) -> None:
    write_file(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False))


def analyse(
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
    write_metrics(out, metrics)
    report.write_eval_report(
        out, metrics, gt, detections, per_image, image_dir, score_thr, paper_reference(metrics)
    )


def score(out: Path, metrics: dict, gt, by_type: dict[str, list[dict]],
           image_dir: Path | None, score_thr: float, iou_thr: float) -> None:  # fmt: skip
    """COCO results (per IoU type) scored into `metrics`, then `analyse`'s outputs: the
    scoring of a `--results` file and of an ONNX export."""
    from cardd.openmmlab.metrics import evaluate_detections, summarize

    evaluators = {}
    for iou_type, results in by_type.items():
        evaluators[iou_type] = evaluate_detections(gt, results, iou_type)
        metrics[iou_type] = summarize(evaluators[iou_type])
    analyse(out, metrics, gt, evaluators, by_type, image_dir, score_thr, iou_thr)


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


