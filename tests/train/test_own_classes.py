"""A model of a user's own dataset, end to end: its classes, ids and colours in every
output (train, infer, export, serve, eval), and mismatches refused before any output.

The run (`own_run`) is `tiny_DCN_plus` fine-tuned from the CarDD tiny export on three
classes with ids 0, 4, 7 and no test split; every command runs in a fresh process.
"""

import csv
import json

import pytest
import requests
import torch

from cardd.structures.classes import ClassSet
from tests.conftest import OWN_CLASSES, run_cardd
from tests.support import live_service
from tests.support.datasets import categories, relabel

pytestmark = pytest.mark.slow

NAMES = tuple(name for name, _ in OWN_CLASSES)
IDS = tuple(cid for _, cid in OWN_CLASSES)
BY_ID = {cid: name for name, cid in OWN_CLASSES}


def test_the_run_says_what_it_fine_tuned_and_records_the_datasets_classes(own_run):
    work_dir, printed = own_run
    assert (
        "re-initialised roi_head.bbox_head.fc_cls, roi_head.bbox_head.fc_reg, "
        "roi_head.mask_head.conv_logits, everything else loaded" in printed
    )
    assert "now 3 classes: 0 paint chip, 4 dent, 7 bumper misaligned" in printed
    meta = torch.load(work_dir / "epoch_1.pth", weights_only=False)["meta"]["dataset_meta"]
    assert tuple(meta["classes"]) == NAMES and tuple(meta["category_ids"]) == IDS
    state = torch.load(work_dir / "epoch_1.pth", weights_only=False)["state_dict"]
    assert state["roi_head.bbox_head.fc_cls.weight"].shape[0] == 3 + 1  # and background
    assert state["roi_head.mask_head.conv_logits.weight"].shape[0] == 3


def test_infer_writes_the_datasets_names_and_ids(own_run, own_data, tmp_path):
    work_dir, _ = own_run
    images = own_data.parent / "images/val"
    out = tmp_path / "infer"
    result = run_cardd(
        "infer", images, "--checkpoint", work_dir / "epoch_1.pth", "--score-thr", "0",
        "--device", "cpu", "--out-dir", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    detections = [
        d
        for p in sorted(out.glob("preds/**/*.json"))
        for d in json.loads(p.read_text())["detections"]
    ]
    assert detections, result.stdout + result.stderr
    assert all(BY_ID[d["category_id"]] == d["label"] for d in detections)
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["category_id"]) for r in rows} <= set(IDS) and len(rows) == len(detections)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == [{"id": i, "name": n} for n, i in OWN_CLASSES]
    assert list(summary["detections_per_class"]) == list(NAMES)
    index = (out / "index.html").read_text()
    assert "bumper misaligned" in index and "tire flat" not in index


def test_export_and_serve_carry_the_classes(own_run, own_data, tmp_path):
    work_dir, _ = own_run
    export = tmp_path / "claims.pth"
    result = run_cardd("export", "--checkpoint", work_dir / "epoch_1.pth", "--out", export)
    assert result.returncode == 0, result.stderr
    described = torch.load(export, weights_only=True)
    assert tuple(described["cardd_export"]["category_ids"]) == IDS
    classes = ClassSet.from_meta(described["meta"]["dataset_meta"])
    assert classes.names == NAMES and classes.ids == IDS
    with live_service.running(export, tmp_path / "serve.log", config=None) as service:
        health = requests.get(f"{service.url}/health", timeout=10).json()
        assert health["classes"] == list(NAMES) and health["category_ids"] == list(IDS)
        assert health["palette"] == [list(c) for c in classes.palette]
        image = next((own_data.parent / "images/val").glob("*.jpg"))
        with open(image, "rb") as f:
            answer = requests.post(
                f"{service.url}/v1/detect?score_thr=0", files={"image": f}, timeout=60
            ).json()
    assert answer["detections"]
    assert all(BY_ID[d["category_id"]] == d["label"] for d in answer["detections"])


def test_eval_on_its_own_dataset_and_nothing_else(own_run, own_data, synthetic_root, tmp_path):
    work_dir, _ = own_run
    checkpoint = work_dir / "epoch_1.pth"
    out = tmp_path / "eval"
    result = run_cardd(
        "eval", "--checkpoint", checkpoint, "--data", own_data, "--split", "val",
        "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["bbox"]["per_class"]) == list(NAMES)
    assert metrics["classes"] == [{"id": i, "name": n} for n, i in OWN_CLASSES]
    assert metrics["confusion_matrix"]["labels"] == [*NAMES, "background"]
    assert "bumper misaligned" in (out / "report.html").read_text()

    refusals = [
        (["--data", own_data, "--split", "test"], "has no test split (it has: train, val)"),
        (["--data-root", synthetic_root, "--split", "val"], "predicts 3 classes: 0 paint chip"),
    ]
    reordered = relabel(
        synthetic_root, tmp_path / "reordered", categories(list(NAMES[::-1]), list(IDS[::-1]))
    )
    refusals.append((["--data", reordered, "--split", "val"], "the same classes in another order"))
    for number, (args, message) in enumerate(refusals):
        out = tmp_path / f"refused{number}"
        result = run_cardd(
            "eval", "--checkpoint", checkpoint, *args, "--device", "cpu", "--out", out
        )
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not out.exists()


def test_a_results_file_with_ids_the_ground_truth_lacks_is_refused(own_data, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 0.9,
                                    "bbox": [1, 1, 5, 5]}]))  # fmt: skip
    out = tmp_path / "eval"
    result = run_cardd(
        "eval", "--results", results, "--data", own_data, "--split", "train", "--out", out
    )
    assert result.returncode == 1 and "category ids 1 are not the ground truth's" in result.stderr
    assert not out.exists()


def test_resuming_on_another_dataset_is_refused(own_run, synthetic_root):
    work_dir, _ = own_run
    result = run_cardd(
        "train", "--config", "tiny_DCN_plus", "--data-root", synthetic_root,
        "--resume", work_dir / "epoch_1.pth", "--work-dir", work_dir, "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "was trained for 3 classes: 0 paint chip" in result.stderr
    assert "this dataset has 6 classes: 1 dent" in result.stderr
    assert sorted(p.name for p in work_dir.glob("epoch_*.pth")) == ["epoch_1.pth"]


@pytest.mark.parametrize(
    ("names", "ids"),
    [
        (["damage"], [0]),  # one class, id 0
        (  # CarDD's six in another order, other ids
            ["tire flat", "lamp broken", "glass shatter", "crack", "scratch", "dent"],
            [60, 50, 40, 30, 20, 10],
        ),
        ([f"part {k}" for k in range(25)], list(range(1, 50, 2))),  # 25 classes, gaps
    ],
)
def test_any_number_of_classes_trains_predicts_and_scores(synthetic_root, tmp_path, names, ids):
    from cardd import DamageDetector
    from cardd.evaluate.options import EvalOptions
    from cardd.evaluate.runner import evaluate
    from cardd.train.options import TrainOptions
    from cardd.train.runner import train

    data = relabel(synthetic_root, tmp_path / "data", categories(names, ids))
    work_dir = train(
        TrainOptions(
            config="tiny_DCN_plus",
            data=data,
            work_dir=tmp_path / "run",
            device="cpu",
            max_epochs=1,
            seed=0,
        )  # fmt: skip
    )
    detector = DamageDetector(checkpoint=work_dir / "epoch_1.pth", device="cpu", score_thr=0)
    assert detector.classes.names == tuple(names) and detector.classes.ids == tuple(ids)
    assert len(set(detector.classes.palette)) == len(names)
    photo = next((synthetic_root / "val2017").glob("*.jpg"))
    found = detector.predict(photo)
    assert found and {d.category_id for d in found} <= set(ids)
    assert all(detector.classes.name_of(d.category_id) == d.label for d in found)
    evaluation = evaluate(
        EvalOptions(
            checkpoint=str(work_dir / "epoch_1.pth"),
            data=data,
            split="val",
            device="cpu",
            out=tmp_path / "eval",
        )  # fmt: skip
    )
    metrics, out = evaluation.metrics, evaluation.out
    assert evaluation.ap("segm", "AP") == metrics["segm"]["AP"]
    assert evaluation.report == str(out / "report.html")
    assert list(metrics["segm"]["per_class"]) == names
    assert len(metrics["confusion_matrix"]["matrix"]) == len(names) + 1
    assert (out / "confusion_matrix.png").is_file() and (out / "pr_curve_bbox.png").is_file()


def test_assess_with_a_model_of_other_classes_grades_nothing_it_has_no_rule_for(
    own_run, own_data, tmp_path
):
    work_dir, _ = own_run
    out = tmp_path / "claim"
    result = run_cardd(
        "assess", own_data.parent / "images/val", "--damage-model", work_dir / "epoch_1.pth",
        "--device", "cpu", "--out-dir", out, "--score-thr", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claim = json.loads((out / "claim.json").read_text())
    assert [c["name"] for c in claim["models"]["damage"]["classes"]] == list(NAMES)
    # cardd's default rules are CarDD's: these photos are also too small for them
    assert claim["photos_usable"] == 0 and claim["status"] == "rejected"
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nphotos: {min_side: 100, min_sharpness: 0}\n")
    out = tmp_path / "claim2"
    result = run_cardd(
        "assess", own_data.parent / "images/val", "--damage-model", work_dir / "epoch_1.pth",
        "--rules", rules, "--device", "cpu", "--out-dir", out, "--score-thr", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claim = json.loads((out / "claim.json").read_text())
    assert claim["findings"] and {f["damage"] for f in claim["findings"]} <= set(NAMES)
    assert all(f["severity"] is None for f in claim["findings"])
    assert all(f["status"] != "confirmed" for f in claim["findings"])  # no rule: never passed
