"""The export's check of onnxruntime against PyTorch: strict above every tie of scores,
where either engine may rank either detection first (and NMS then keep either box)."""

import numpy as np
import pytest

from cardd.core.errors import CarddError
from cardd.export.onnx import compare_detections


def _detections(scores, labels=None, shift=0.0):
    count = len(scores)
    boxes = np.array([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(count)], np.float32) + shift
    labels = np.zeros(count, np.int64) if labels is None else np.array(labels, np.int64)
    masks = np.zeros((count, 28, 28), np.float32)
    return [boxes, np.array(scores, np.float32), labels, masks]


def _swap(detections, a, b):
    for array in detections:
        array[[a, b]] = array[[b, a]]
    return detections


def test_the_same_detections_pass_and_are_counted():
    expected = _detections([0.9, 0.5, 0.3])
    check = compare_detections(expected, _detections([0.9, 0.5, 0.3], shift=0.1), 0.05)
    assert check["detections"] == 3 and check["tied"] == 0
    assert check["max_box_px"] == pytest.approx(0.1, abs=1e-5)


def test_another_order_of_the_same_detections_passes():
    expected = _detections([0.9, 0.5, 0.3], labels=[0, 1, 0])
    assert compare_detections(expected, _swap(_detections([0.9, 0.5, 0.3], [0, 1, 0]), 0, 2),
                              0.05)["tied"] == 0  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d[0].__setitem__((0, 0), d[0][0, 0] + 2), "none of PyTorch's"),  # box 2 px off
        (lambda d: d[1].__setitem__(1, 0.4), "none of PyTorch's"),  # a score 0.1 off
        (lambda d: d[2].__setitem__(0, 1), "none of PyTorch's"),  # another class
        (lambda d: d[3].__setitem__(2, 1.0), "masks up to 1"),
    ],
)
def test_a_difference_above_every_tie_fails(change, message):
    got = _detections([0.9, 0.5, 0.3])
    change(got)
    with pytest.raises(CarddError, match=message):
        compare_detections(_detections([0.9, 0.5, 0.3]), got, 0.05)


def test_a_missing_detection_above_every_tie_fails():
    got = [array[:2] for array in _detections([0.9, 0.5, 0.3])]
    with pytest.raises(CarddError, match="score 0.3"):
        compare_detections(_detections([0.9, 0.5, 0.3]), got, 0.05)


def test_below_a_tie_either_engines_choice_passes():
    """Two candidates 1e-8 apart: PyTorch kept one box, onnxruntime the other (NMS), and
    below them what each suppressed differs too; above them all must agree, and even
    below, what onnxruntime keeps must be one of PyTorch's candidates."""
    expected = _detections([0.9, 0.60000001, 0.2])
    candidates = _detections([0.9, 0.60000001, 0.6, 0.2, 0.1])[:3]
    got = [array[[0, 2, 4]] for array in candidates] + [np.zeros((3, 28, 28), np.float32)]
    check = compare_detections(expected, got, 0.05, candidates)
    assert check["tied"] == 4 and check["detections"] == 3
    apart = [a.copy() for a in candidates]
    apart[1][1] = 0.7  # no tie: PyTorch's second is well above onnxruntime's, refused
    with pytest.raises(CarddError, match="score 0.7"):
        compare_detections(_detections([0.9, 0.7, 0.2]), got, 0.05, apart)
    wrong = [array.copy() for array in got]
    wrong[0][2] += 3  # below the tie, but no candidate of PyTorch's
    with pytest.raises(CarddError, match="none of PyTorch's candidates"):
        compare_detections(expected, wrong, 0.05, candidates)
    extra = _detections([0.9, 0.60000001, 0.6, 0.2, 0.1, 0.85])[:3]  # one more candidate
    instead = [a[[5, 2, 4]] for a in extra] + [np.zeros((3, 28, 28), np.float32)]
    with pytest.raises(CarddError, match="score 0.9"):  # onnxruntime's best is another one
        compare_detections(expected, instead, 0.05, extra)
