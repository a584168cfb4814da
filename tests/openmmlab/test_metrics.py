"""COCO AP in COCO's and the CarDD paper's size bins from one COCOeval pass."""

import contextlib
import copy
import io
import json
import random

import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cardd.openmmlab.metrics import flat_scores, score_detections
from cardd.structures.classes import CATEGORIES, CLASSES


def _coco(images, annotations) -> COCO:
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _square(ann_id, image_id, category_id, x, side):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, 10, side, side],
        "area": side * side,
        "iscrowd": 0,
        "segmentation": [[x, 10, x + side, 10, x + side, 10 + side, x, 10 + side]],
    }


def _as_result(ann, score=1.0, **change):
    result = {k: ann[k] for k in ("image_id", "category_id", "bbox")}
    return {**result, "score": score, **change}


@pytest.fixture(scope="module")
def four_sizes():
    """One image, four dents of 127², 129², 255² and 257² pixels: CarDD small,
    medium, medium, large; all large in COCO's bins."""
    images = [{"id": 1, "width": 1200, "height": 400, "file_name": "1.jpg"}]
    sides = (127, 129, 255, 257)
    xs = (0, 140, 280, 540)
    return _coco(
        images, [_square(i + 1, 1, 1, x, s) for i, (x, s) in enumerate(zip(xs, sides, strict=True))]
    )


def test_cardd_bins_at_their_edges(four_sizes):
    anns = four_sizes.dataset["annotations"]
    only_small = score_detections(four_sizes, [_as_result(anns[0])], "bbox")
    assert only_small["cardd_bins"] == {"APs": 100.0, "APm": 0.0, "APl": 0.0}
    assert only_small["APs"] is None and only_small["APm"] is None  # nothing that small
    only_medium = score_detections(four_sizes, [_as_result(a) for a in anns[1:3]], "bbox")
    assert only_medium["cardd_bins"] == {"APs": 0.0, "APm": 100.0, "APl": 0.0}
    only_large = score_detections(four_sizes, [_as_result(anns[3])], "bbox")
    assert only_large["cardd_bins"] == {"APs": 0.0, "APm": 0.0, "APl": 100.0}
    assert 0 < only_large["APl"] < 100  # COCO's large bin holds all four


@pytest.fixture(scope="module")
def six_classes():
    """One image per class, one square each."""
    images = [{"id": i, "width": 400, "height": 400, "file_name": f"{i}.jpg"} for i in range(1, 7)]
    return _coco(images, [_square(i, i, i, 20, 40 + 10 * i) for i in range(1, 7)])


def test_per_class_ap_lands_on_the_right_name(six_classes):
    anns = six_classes.dataset["annotations"]
    scratch_only = score_detections(six_classes, [_as_result(anns[1])], "bbox")
    assert scratch_only["per_class"] == {
        name: (100.0 if name == "scratch" else 0.0) for name in CLASSES
    }
    # dent and scratch swapped: both wrong, the other four right
    swap = {1: 2, 2: 1}
    swapped = [
        _as_result(a, category_id=swap.get(a["category_id"], a["category_id"])) for a in anns
    ]
    per_class = score_detections(six_classes, swapped, "bbox")["per_class"]
    assert per_class["dent"] == per_class["scratch"] == 0.0
    assert all(per_class[name] == 100.0 for name in CLASSES[2:])


def test_segm_scores_masks(six_classes):
    anns = six_classes.dataset["annotations"]

    def rle(ann, shift=0):
        polygon = [v + shift if i % 2 == 0 else v for i, v in enumerate(ann["segmentation"][0])]
        encoded = mask_utils.merge(mask_utils.frPyObjects([polygon], 400, 400))
        return {"size": encoded["size"], "counts": encoded["counts"].decode()}

    # (both built first: COCOeval turns the ground truth's polygons into RLE in place)
    exact = [{**_as_result(a), "segmentation": rle(a)} for a in anns]
    # boxes right, masks shifted by half their width: box AP stays, mask AP falls
    shifted = [{**_as_result(a), "segmentation": rle(a, a["bbox"][2] // 2)} for a in anns]
    assert score_detections(six_classes, exact, "segm")["AP"] == 100.0
    assert score_detections(six_classes, shifted, "bbox")["AP"] == 100.0
    assert score_detections(six_classes, shifted, "segm")["AP"] == 0.0
    assert "bbox" in shifted[0]  # the caller's results are not modified


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_bins_equal_pycocotools_summarize(synthetic_root, iou_type):
    """The one-pass numbers in COCO's bins are exactly what COCOeval.summarize gives."""
    path = synthetic_root / "annotations/instances_train2017.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    rng = random.Random(0)
    results = []
    for ann in json.loads(path.read_text())["annotations"]:
        for _ in range(2):
            x, y, w, h = ann["bbox"]
            jitter = [x + rng.uniform(-4, 4), y + rng.uniform(-4, 4), w * rng.uniform(0.8, 1.2), h]
            result = {
                "image_id": ann["image_id"],
                "category_id": rng.choice([ann["category_id"], rng.randint(1, 6)]),
                "bbox": jitter,
                "score": rng.random(),
            }
            if iou_type == "segm":
                rles = mask_utils.frPyObjects(ann["segmentation"], 10000, 10000)
                merged = mask_utils.merge(rles)
                result["segmentation"] = {
                    "size": merged["size"],
                    "counts": merged["counts"].decode(),
                }
            results.append(result)
    ours = score_detections(gt, results, iou_type)

    reference_results = copy.deepcopy(results)
    if iou_type == "segm":
        for r in reference_results:
            r.pop("bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCOeval(gt, gt.loadRes(reference_results), iou_type)
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    for index, key in enumerate(("AP", "AP50", "AP75", "APs", "APm", "APl")):
        expected = reference.stats[index]
        assert ours[key] == (None if expected < 0 else round(expected * 100, 2)), key


def test_no_detections_score_zero_where_there_is_ground_truth(four_sizes):
    scores = score_detections(four_sizes, [], "bbox")
    assert scores["AP"] == 0.0 and scores["cardd_bins"]["APs"] == 0.0
    assert scores["APs"] is None  # no ground truth that small in COCO's bins
    assert scores["per_class"]["dent"] == 0.0 and scores["per_class"]["crack"] is None


def test_flat_scores_for_the_logs():
    scores = {
        "AP": 50.0,
        "AP50": 60.0,
        "AP75": None,
        "APs": 1.0,
        "APm": 2.0,
        "APl": 3.0,
        "cardd_bins": {"APs": 4.0, "APm": None, "APl": 6.0},
        "per_class": dict.fromkeys(CLASSES, 7.0),
    }
    flat = flat_scores("bbox", scores)
    assert flat["bbox_mAP"] == 0.5 and flat["bbox_mAP_75"] == -1.0
    assert flat["bbox_mAP_s_cardd"] == 0.04 and flat["bbox_mAP_m_cardd"] == -1.0
    assert flat["bbox_glass_shatter_precision"] == 0.07


def test_confusion_matrix_of_hand_built_predictions(six_classes):
    from cardd.openmmlab.metrics import confusion_matrix

    anns = six_classes.dataset["annotations"]  # one object per class, one image each
    as_scratch = [_as_result(anns[0], category_id=2)]  # the dent, called a scratch
    right = [_as_result(a) for a in anns[2:5]]  # crack, glass shatter, lamp: right
    far = {**_as_result(anns[5]), "bbox": [300, 300, 20, 20]}  # tire flat: box elsewhere
    low = _as_result(anns[1], score=0.1)  # the scratch: under the score threshold
    matrix, per_image = confusion_matrix(six_classes, [*as_scratch, *right, far, low], 0.5, 0.3)
    background = 6
    assert matrix[0][1] == 1 and sum(matrix[0]) == 1  # dent -> scratch
    assert matrix[1][background] == 1  # scratch missed (its only prediction scored 0.1)
    assert [matrix[k][k] for k in (2, 3, 4)] == [1, 1, 1]
    assert matrix[5][background] == 1 and matrix[background][5] == 1  # miss + false alarm
    assert sum(map(sum, matrix)) == 7  # 6 objects, one of them also a false alarm
    assert per_image[6] == {"misses": 1, "false_alarms": 1}
    assert per_image[1] == {"misses": 0, "false_alarms": 0}


def test_best_f1_threshold(six_classes):
    from cardd.openmmlab.metrics import best_f1, evaluate_detections

    anns = six_classes.dataset["annotations"]
    results = [_as_result(a, score=0.9) for a in anns]
    results.append({**_as_result(anns[0], score=0.5), "bbox": [300, 300, 30, 30]})  # a false dent
    best = best_f1(evaluate_detections(six_classes, results, "bbox"))
    assert best["dent"] == {"threshold": 0.9, "f1": 1.0, "precision": 1.0, "recall": 1.0}


def test_other_category_ids_and_annotation_id_zero_score_right():
    """Ids from 0 with gaps, in a file order that is not id order; and Roboflow's
    annotation ids from 0, which COCOeval would never count as found."""
    from cardd.openmmlab.metrics import number_annotations_from_one

    categories = [{"id": 9, "name": "b"}, {"id": 0, "name": "a"}]
    images = [{"id": 1, "width": 800, "height": 400, "file_name": "1.jpg"}]
    annotations = [_square(0, 1, 9, 0, 100), _square(1, 1, 0, 300, 150)]

    def ground_truth():
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": copy.deepcopy(annotations),
            "categories": categories,
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt

    perfect = [_as_result(a) for a in annotations]
    as_is = score_detections(ground_truth(), perfect, "bbox")
    assert as_is["per_class"]["b"] < 100  # the control: id 0's object is never "found"
    renumbered = number_annotations_from_one(ground_truth())
    scores = score_detections(renumbered, perfect, "bbox")
    assert list(scores["per_class"]) == ["b", "a"]  # the file's (label) order
    assert scores["per_class"] == {"b": 100.0, "a": 100.0} and scores["AP"] == 100.0
    swapped = [dict(perfect[0], category_id=0), dict(perfect[1], category_id=9)]
    assert score_detections(renumbered, swapped, "bbox")["AP"] == 0.0
