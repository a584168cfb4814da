"""Plots of runs and evaluations (matplotlib): training curves, PR curves, confusion matrix.

Training curves are read from mmengine's own scalar logs
(`<work_dir>/<timestamp>/vis_data/scalars.json`: one JSON record per logged
step, training records by iteration, validation records by epoch), so
`cardd plot` can redraw any run, finished, resumed or still training. Every
figure is written to a temporary name and renamed, so a reader never sees half
a picture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError

#: The validation scalars drawn per IoU type, and how they are labelled.
VAL_CURVES = (
    ("mAP", "AP"),
    ("mAP_50", "AP50"),
    ("mAP_75", "AP75"),
    ("mAP_s_cardd", "APs (CarDD bins)"),
    ("mAP_m_cardd", "APm (CarDD bins)"),
    ("mAP_l_cardd", "APl (CarDD bins)"),
)


if TYPE_CHECKING:
    from cardd.structures.classes import ClassSet


def _colour(rgb) -> tuple[float, float, float]:
    return tuple(c / 255 for c in rgb)


def _save(figure, path: Path) -> Path:
    """Write a figure atomically (temporary name, then rename) and close it."""
    import matplotlib.pyplot as plt

    from cardd.core.files import write_file

    try:
        write_file(path, lambda partial: figure.savefig(partial, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(figure)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_scalars(work_dir: Path) -> tuple[list[dict], list[dict]]:
    """Training records (by iteration) and validation records (by epoch) of every log
    in the work dir, oldest run first; a resumed run's records replace the earlier
    run's at the same step."""
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    for log in sorted(Path(work_dir).glob("*/vis_data/scalars.json")):
        with open(log) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written right now
                if not isinstance(record, dict) or "step" not in record:
                    continue
                if any(key.startswith("coco/") for key in record):
                    val[record["step"]] = record
                elif any(key.startswith("loss") for key in record):
                    train[record["step"]] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def training_curves(work_dir: Path, out: Path | None = None) -> Path:
    """Draw losses, learning rate and validation mAP (COCO and CarDD bins) of a run.

    Returns:
        The picture, `<work_dir>/plots/training_curves.png` unless `out` is given.

    Raises:
        CarddError: the folder holds no training logs.
    """
    work_dir = Path(work_dir)
    train, val = read_scalars(work_dir)
    if not train and not val:
        raise CarddError(f"no training logs (*/vis_data/scalars.json) in {work_dir}")
    plt = _pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    losses, lr, bbox, segm = axes.flat

    steps = [r["step"] for r in train]
    loss_keys = sorted({k for r in train for k in r if k.startswith("loss")})
    for i, key in enumerate(loss_keys):
        points = [(r["step"], r[key]) for r in train if key in r]
        width = 2.2 if key == "loss" else 1.2
        losses.plot(*zip(*points, strict=True), label=key, linewidth=width, color=f"C{i}")
    losses.set(title="training losses", xlabel="iteration", ylabel="loss")
    losses.set_yscale("log" if train and min(r.get("loss", 1) for r in train) > 0 else "linear")
    if loss_keys:
        losses.legend(fontsize=8)
    if any("lr" in r for r in train):
        lr.plot(steps, [r.get("lr") for r in train], color="C0")
    lr.set(title="learning rate", xlabel="iteration", ylabel="lr")

    for axis, iou_type in ((bbox, "bbox"), (segm, "segm")):
        epochs = [r["step"] for r in val]
        for i, (suffix, label) in enumerate(VAL_CURVES):
            key = f"coco/{iou_type}_{suffix}"
            values = [
                (e, r[key] * 100) for e, r in zip(epochs, val, strict=True) if r.get(key, -1) >= 0
            ]
            if values:
                style = "-" if "cardd" not in suffix else "--"
                axis.plot(*zip(*values, strict=True), style, marker="o", label=label, color=f"C{i}")
        axis.set(title=f"validation {iou_type} AP (%)", xlabel="epoch", ylabel="AP")
        if val:
            axis.legend(fontsize=8)
            axis.set_xticks(epochs if len(epochs) <= 24 else epochs[:: max(1, len(epochs) // 12)])
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    figure.suptitle(f"{work_dir.name}: {len(train)} logged iterations, {len(val)} validations")
    figure.tight_layout()
    return _save(figure, out or work_dir / "plots" / "training_curves.png")


def pr_curve_figure(curves: dict, iou_type: str, out: Path, classes: ClassSet) -> Path:
    """Precision-recall per class (in its colour) at IoU 0.5 and over IoU 0.5:0.95."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for axis, key, title in ((axes[0], "iou50", "IoU 0.5"), (axes[1], "iou50_95", "IoU 0.5:0.95")):
        for name, rgb in zip(classes.names, classes.palette, strict=True):
            precision = curves[key].get(name)
            if precision is not None:
                axis.plot(curves["recall"], precision, label=name, color=_colour(rgb), linewidth=2)
        axis.set(title=f"{iou_type}, {title}", xlabel="recall", xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("precision")
    if any(line.get_label() for line in axes[0].get_lines()):
        axes[0].legend(loc="lower left", fontsize=9 if len(classes) <= 10 else 7,
                       ncol=1 if len(classes) <= 10 else 2)  # fmt: skip
    figure.tight_layout()
    return _save(figure, out)


def confusion_figure(
    matrix: list[list[int]], iou_thr: float, score_thr: float, out: Path, classes: ClassSet
) -> Path:
    """The confusion matrix twice: counts, and each ground-truth row as fractions."""
    import numpy as np

    plt = _pyplot()
    labels = [*classes.names, "background"]
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = max(6.5, 0.42 * len(labels))  # room for 25 classes' labels and counts
    figure, axes = plt.subplots(1, 2, figsize=(side * 2.3, side))
    for axis, values, title, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], normalised, "fraction of each ground-truth row", "{:.2f}"),
    ):
        axis.imshow(values, cmap="Blues", vmin=0)
        axis.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
        axis.set_yticks(range(len(labels)), labels)
        axis.set(xlabel="predicted", ylabel="ground truth", title=title)
        top = values.max() or 1
        for i in range(len(labels)):
            for j in range(len(labels)):
                if values[i, j]:
                    colour = "white" if values[i, j] > 0.6 * top else "black"
                    axis.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                              color=colour, fontsize=9 if len(labels) <= 12 else 6)  # fmt: skip
    figure.suptitle(
        f"confusion matrix at IoU {iou_thr:g}, score >= {score_thr:g} "
        "(background column: misses; background row: false alarms)"
    )
    figure.tight_layout()
    return _save(figure, out)
