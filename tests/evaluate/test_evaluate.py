import json

import pytest
import torch
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.structures.classes import CLASSES
from tests.conftest import assert_real_picture, broken_links, run_cardd

slow = pytest.mark.slow


def _eval(*args):
    return CliRunner().invoke(cli, ["eval", *args])


@slow
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
    # the pictures and the report beside metrics.json
    for name in ("pr_curve_bbox", "pr_curve_segm", "confusion_matrix"):
        assert_real_picture(out / f"{name}.png", (600, 300))
    assert not broken_links(out / "report.html")
    confusion = metrics["confusion_matrix"]
    assert confusion["labels"] == [*CLASSES, "background"] and confusion["iou_thr"] == 0.5
    gt = json.loads((synthetic_root / "annotations/instances_val2017.json").read_text())
    rows = confusion["matrix"]
    assert sum(sum(row) for row in rows[:6]) == len(gt["annotations"])  # every object, once
    assert set(metrics["bbox"]["best_f1"]) == set(CLASSES)
    # the numbers are those of the results file, scored the paper's way
    results_out = tmp_path / "from_results"
    again = _eval(
        "--results",
        str(out / "coco_results.segm.json"),
        "--data-root",
        str(synthetic_root),
        "--split",
        "val",
        "--out",
        str(results_out),
    )
    assert again.exit_code == 0, again.output
    rescored = json.loads((results_out / "metrics.json").read_text())
    assert rescored["segm"] == metrics["segm"] and rescored["bbox"] == metrics["bbox"]


@slow
def test_training_validation_logs_cardd_bins(trained_work_dir):
    logs = list(trained_work_dir.glob("*/vis_data/scalars.json"))
    records = [json.loads(line) for line in logs[0].read_text().splitlines()]
    validation = [r for r in records if "coco/bbox_mAP" in r]
    assert validation and "coco/bbox_mAP_s_cardd" in validation[-1]
    assert "coco/segm_mAP_l_cardd" in validation[-1]


def _refused_without_metrics(result, out, message):
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "metrics.json").exists()


@slow
def test_a_model_that_does_not_load_is_not_scored(tiny_checkpoint, synthetic_root, tmp_path):
    full = torch.load(tiny_checkpoint, weights_only=False)
    state = full["state_dict"]
    half_missing = dict(list(state.items())[: len(state) // 2])
    partial = tmp_path / "partial.pth"
    torch.save({"state_dict": half_missing, "meta": full["meta"]}, partial)
    other_classes = tmp_path / "other.pth"
    meta = {**full["meta"], "dataset_meta": {"classes": [f"c{i}" for i in range(6)]}}
    torch.save({"state_dict": state, "meta": meta}, other_classes)
    common = ["--config", "tiny_DCN_plus", "--data-root", str(synthetic_root), "--split", "val"]
    common += ["--device", "cpu"]
    out = tmp_path / "a"
    result = _eval(*common, "--checkpoint", str(partial), "--out", str(out))
    _refused_without_metrics(result, out, "does not fit")
    out = tmp_path / "b"
    result = _eval(*common, "--checkpoint", str(other_classes), "--out", str(out))
    _refused_without_metrics(result, out, "was trained for 6 classes: 1 c0")


@slow
def test_best_and_work_dir_find_a_run(trained_work_dir, synthetic_root, tmp_path):
    import shutil

    run = tmp_path / "my_run"
    shutil.copytree(trained_work_dir, run)
    (run / "epoch_1.pth").rename(run / "best_coco_bbox_mAP_epoch_1.pth")
    (run / "last_checkpoint").unlink()
    out = tmp_path / "eval"
    result = run_cardd(  # a fresh process: the run's config alone must be enough
        "eval", "--checkpoint", "best", "--work-dir", run, "--data-root", synthetic_root,
        "--split", "val", "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint"].endswith("best_coco_bbox_mAP_epoch_1.pth")
    assert metrics["config"].startswith("tiny_DCN_plus (recorded in")  # the run's own record


@slow
def test_reordered_categories_are_refused(tiny_checkpoint, dataset_copy, tmp_path):
    root = dataset_copy / "CarDD_COCO"
    path = root / "annotations/instances_val2017.json"
    coco = json.loads(path.read_text())
    coco["categories"] = coco["categories"][::-1]
    path.write_text(json.dumps(coco))
    out = tmp_path / "eval"
    result = _eval(
        "--config",
        "tiny_DCN_plus",
        "--checkpoint",
        str(tiny_checkpoint),
        "--data-root",
        str(root),
        "--split",
        "val",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    _refused_without_metrics(result, out, "another order")


@slow
def test_eval_errors(tmp_path, synthetic_root):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(
            cli, ["eval", "--config", "tiny_DCN_plus", "--data-root", str(synthetic_root)]
        )
        assert result.exit_code == 1 and "cardd train --config tiny_DCN_plus" in result.output


def test_paper_numbers_beside_dcn_plus_on_test_only(capsys):
    from cardd.evaluate.common import PAPER_DCN_PLUS, paper_reference, print_metrics

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


# --- `cardd eval --results`: any model's predictions, the paper's protocol --------------


def _gt(synthetic_root):
    return synthetic_root / "annotations/instances_test2017.json"


def _perfect_results(synthetic_root) -> list[dict]:
    gt = json.loads(_gt(synthetic_root).read_text())
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "segmentation": a["segmentation"],
            "score": 0.9,
        }
        for a in gt["annotations"]
    ]


def test_results_of_another_model_score_like_a_checkpoint(synthetic_root, tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(_perfect_results(synthetic_root)))
    out = tmp_path / "out"
    result = _eval("--results", str(path), "--ann", str(_gt(synthetic_root)), "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["detections"] == len(
        _perfect_results(synthetic_root)
    )
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 100.0
        assert metrics[iou_type]["cardd_bins"]["APs"] == 100.0  # synthetic damage is small
    assert "paper DCN+" in result.output  # the test split: the paper's rows beside
    # perfect predictions: a diagonal confusion matrix, a report with no gallery to show
    matrix = metrics["confusion_matrix"]["matrix"]
    assert all(matrix[i][j] == 0 for i in range(7) for j in range(7) if i != j)
    assert not broken_links(out / "report.html")


def test_report_gallery_shows_the_misses(synthetic_root, tmp_path):
    results = _perfect_results(synthetic_root)
    missing = results.pop(0)  # one object never predicted
    results.append({**missing, "bbox": [1, 1, 8, 8], "segmentation": [[1, 1, 9, 1, 9, 9]]})
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "out"
    result = _eval("--results", str(path), "--data-root", str(synthetic_root), "--out", str(out))
    assert result.exit_code == 0, result.output
    gallery = sorted((out / "gallery").rglob("*.jpg"))
    assert {p.parent.name for p in gallery} == {"misses", "false_alarms"}
    assert_real_picture(gallery[0], (100, 100))
    assert not broken_links(out / "report.html")


def test_boxes_only_score_bbox_only(synthetic_root, tmp_path):
    results = _perfect_results(synthetic_root)
    for r in results:
        del r["segmentation"]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "out"
    result = _eval("--results", str(path), "--data-root", str(synthetic_root), "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "bbox" in metrics and "segm" not in metrics


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"a": 1}', "not a list of COCO results"),
        ('[{"image_id": 1, "category_id": 1, "score": 1}]', "lacks bbox or segmentation"),
        ("CATEGORY", "category ids 0, 7 are not the ground truth's (6 classes: 1 dent"),
        ("IMAGE", "2 of 3 results name 1 image ids absent"),
        # 241 bytes once took 932 MB: pycocotools allocates the size an RLE states
        ("RLE", "result 0 has an RLE of size [20000, 20000]; its image"),
        ("NAN", "result 0 has a score that is not a number"),
    ],
)
def test_bad_results_files_are_one_line(synthetic_root, tmp_path, content, message):
    results = _perfect_results(synthetic_root)[:3]
    if content == "RLE":
        results[0]["segmentation"] = {"size": [20000, 20000], "counts": "0"}
        content = json.dumps(results)
    elif content == "NAN":
        results[0]["score"] = float("nan")
        content = json.dumps(results)
    elif content == "CATEGORY":
        results[0]["category_id"], results[1]["category_id"] = 0, 7
        content = json.dumps(results)
    elif content == "IMAGE":
        results[1]["image_id"] = results[2]["image_id"] = 987654
        content = json.dumps(results)
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = tmp_path / "out"
    result = _eval("--results", str(path), "--ann", str(_gt(synthetic_root)), "--out", str(out))
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()


def test_empty_results_score_zero_and_say_so(synthetic_root, tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    out = tmp_path / "out"
    result = _eval("--results", str(path), "--ann", str(_gt(synthetic_root)), "--out", str(out))
    assert result.exit_code == 0 and "every AP is 0" in result.output
    assert json.loads((out / "metrics.json").read_text())["bbox"]["AP"] == 0.0


def test_an_output_folder_is_replaced_only_with_exist_ok_and_keeps_the_options(
    synthetic_root, tmp_path
):
    """The one run-folder policy (`cardd.core.runs`): an earlier evaluation's folder is
    refused, replaced with --exist-ok (its own files only), and options.json says how
    the run was made."""
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(_perfect_results(synthetic_root)))
    out = tmp_path / "out"
    args = ("--results", str(path), "--data-root", str(synthetic_root), "--out", str(out))
    assert _eval(*args).exit_code == 0
    (out / "notes.txt").write_text("mine")
    refused = _eval(*args)
    assert refused.exit_code == 2 and "--exist-ok" in refused.output
    again = _eval(*args, "--exist-ok", "--iou-thr", "0.75")
    assert again.exit_code == 0, again.output
    saved = json.loads((out / "options.json").read_text())
    assert saved["iou_thr"] == 0.75 and saved["results"] == str(path)
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["confusion_matrix"]["iou_thr"] == 0.75
