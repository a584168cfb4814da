"""Training curves from mmengine's scalar logs; PR-curve and confusion figures."""

import json

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.structures.classes import CARDD, CLASSES
from cardd.visualize.plots import confusion_figure, pr_curve_figure, read_scalars, training_curves
from tests.conftest import assert_real_picture


@pytest.mark.slow
def test_training_keeps_its_curves_and_cardd_plot_redraws_them(trained_work_dir, tmp_path):
    kept = trained_work_dir / "plots" / "training_curves.png"
    assert_real_picture(kept, (600, 400))  # drawn by CarddPlotHook during training
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(cli, ["plot", str(trained_work_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_real_picture(out, (600, 400))
    train, val = read_scalars(trained_work_dir)
    assert train and "loss" in train[-1] and "lr" in train[-1]
    assert val and "coco/bbox_mAP_s_cardd" in val[-1]


def test_resumed_logs_merge_and_missing_logs_are_one_line(tmp_path):
    for stamp, records in (
        ("20260101_000000", [{"loss": 2.0, "lr": 0.1, "step": 1}, {"loss": 1.5, "step": 2}]),
        (
            "20260102_000000",
            [{"loss": 1.2, "lr": 0.1, "step": 2}, {"coco/bbox_mAP": 0.3, "step": 1}],
        ),
    ):
        log = tmp_path / "run" / stamp / "vis_data" / "scalars.json"
        log.parent.mkdir(parents=True)
        log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"loss": 1.')
    train, val = read_scalars(tmp_path / "run")
    assert [r["loss"] for r in train] == [2.0, 1.2]  # the resumed run's step 2 wins
    assert [r["step"] for r in val] == [1]
    assert_real_picture(training_curves(tmp_path / "run"), (600, 400))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CarddError, match="no training logs"):
        training_curves(tmp_path / "empty")
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no training logs" in result.output


def test_pr_and_confusion_figures(tmp_path):
    recall = [i / 100 for i in range(101)]
    curves = {
        "recall": recall,
        "iou50": {name: [1 - r * k / 10 for r in recall] for k, name in enumerate(CLASSES)},
        "iou50_95": {name: None for name in CLASSES},
    }
    assert_real_picture(pr_curve_figure(curves, "bbox", tmp_path / "pr.png", CARDD), (600, 300))
    matrix = [[i + j for j in range(7)] for i in range(7)]
    assert_real_picture(confusion_figure(matrix, 0.5, 0.3, tmp_path / "cm.png", CARDD), (800, 400))
