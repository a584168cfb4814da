import json

import pytest
from click.testing import CliRunner

from cardd.classes import CLASSES
from cardd.cli import cli
from cardd.evaluate import coco_scores

pytestmark = pytest.mark.slow


def test_eval_writes_metrics_with_per_class_rows_and_cardd_bins(
    tiny_checkpoint, synthetic_root, tmp_path
):
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--config",
            "tiny_DCN_plus",
            "--checkpoint",
            str(tiny_checkpoint),
            "--split",
            "val",
            "--data-root",
            str(synthetic_root),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--save-coco",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["images"] == 2
    assert metrics["checkpoint"] == str(tiny_checkpoint)
    for iou_type in ("bbox", "segm"):
        scores = metrics[iou_type]
        assert set(scores["per_class"]) == set(CLASSES)
        assert set(scores["cardd_bins"]) == {"APs", "APm", "APl"}
        for key in ("AP", "AP50", "AP75"):
            assert scores[key] is None or 0 <= scores[key] <= 100
    assert (out / "coco_results.bbox.json").is_file()  # --save-coco
    assert "AP per class" in result.output


def test_scores_of_perfect_predictions(synthetic_root, tmp_path):
    """Ground truth as predictions scores 100 AP: the scoring itself is right."""
    gt_path = synthetic_root / "annotations/instances_test2017.json"
    gt = json.loads(gt_path.read_text())
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt["annotations"]
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    scores = coco_scores(gt_path, path, "bbox")
    assert scores["AP"] == 100.0
    assert all(v == 100.0 for v in scores["per_class"].values())
    cardd = coco_scores(gt_path, path, "bbox", cardd_bins=True)
    # synthetic damages are all < 128^2 pixels: small in CarDD's bins, not all in COCO's
    assert cardd["APs"] == 100.0 and cardd["APl"] is None


def test_eval_errors(tmp_path, synthetic_root):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(
            cli, ["eval", "--config", "tiny_DCN_plus", "--data-root", str(synthetic_root)]
        )
        assert result.exit_code == 1 and "cardd train --config tiny_DCN_plus" in result.output


def test_paper_numbers_beside_dcn_plus_on_test_only(capsys):
    from cardd.evaluate import PAPER_DCN_PLUS, paper_reference, print_metrics

    scores = {
        "AP": 1.0,
        "AP50": 2.0,
        "AP75": 3.0,
        "APs": None,
        "APm": 4.0,
        "APl": 5.0,
        "cardd_bins": {"APs": 6.0, "APm": None, "APl": None},
        "per_class": dict.fromkeys(CLASSES, 7.0),
    }
    metrics = {
        "config": "/x/configs/DCN_plus.py",
        "split": "test",
        "images": 374,
        "bbox": scores,
        "segm": scores,
    }
    assert paper_reference(metrics) is PAPER_DCN_PLUS
    assert paper_reference({**metrics, "split": "val"}) is None
    assert paper_reference({**metrics, "config": "tiny_DCN_plus.py"}) is None
    print_metrics(metrics)
    out = capsys.readouterr().out
    assert "bbox (paper DCN+)" in out and "60.6" in out and "90.2" in out
