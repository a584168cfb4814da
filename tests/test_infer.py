"""`DamageDetector`: the Python API, on a tiny_DCN_plus checkpoint trained in the session."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cardd import DamageDetector, Detection
from cardd.classes import CLASSES
from cardd.errors import CarddError
from cardd.infer import encode_mask, load_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    return DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=0.0)


@pytest.fixture(scope="module")
def test_image(synthetic_root):
    coco = json.loads((synthetic_root / "annotations/instances_test2017.json").read_text())
    return synthetic_root / "test2017" / coco["images"][0]["file_name"]


def test_same_boxes_and_scores_as_mmdet_inference_detector(detector, test_image):
    from mmdet.apis import inference_detector

    array = load_image(test_image)
    ours = detector.predict(array)
    theirs = inference_detector(detector.model, array).pred_instances
    theirs = theirs[theirs.scores.argsort(descending=True)]
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose([d.score for d in ours], theirs.scores.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        [d.bbox_xyxy for d in ours], theirs.bboxes.numpy(), rtol=1e-4, atol=1e-3
    )
    assert [d.label for d in ours] == [CLASSES[i] for i in theirs.labels.tolist()]


def test_path_array_and_pil_inputs_agree(detector, test_image):
    from_path = detector.predict(test_image)
    from_array = detector.predict(np.asarray(Image.open(test_image))[:, :, ::-1])
    from_pil = detector.predict(Image.open(test_image))
    for other in (from_array, from_pil):
        assert [d.score for d in other] == pytest.approx([d.score for d in from_path])


def test_detection_fields(detector, test_image):
    detections = detector.predict(str(test_image))
    width, height = Image.open(test_image).size
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for d in detections:
        assert isinstance(d, Detection)
        assert d.category_id == CLASSES.index(d.label) + 1
        assert d.mask.shape == (height, width) and d.mask.dtype == bool
        assert d.area == float(d.mask.sum())
        assert d.area_fraction == pytest.approx(d.area / (width * height))
        x1, y1, x2, y2 = d.bbox_xyxy
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        as_dict = d.to_dict()
        assert as_dict["mask"]["size"] == [height, width] and isinstance(
            as_dict["mask"]["counts"], str
        )


def test_threshold_applies(tiny_checkpoint, detector, test_image):
    everything = detector.predict(test_image)
    cut = float(np.median([d.score for d in everything]))
    strict = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=cut)
    kept = strict.predict(test_image)
    assert all(d.score >= cut for d in kept)
    assert len(kept) == sum(d.score >= cut for d in everything)


def test_grayscale_rgba_and_exif_rotation(detector, test_image, tmp_path):
    image = Image.open(test_image)
    gray = tmp_path / "gray.png"
    image.convert("L").save(gray)
    rgba = tmp_path / "rgba.png"
    image.convert("RGBA").save(rgba)
    assert load_image(gray).shape == load_image(rgba).shape == (image.height, image.width, 3)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    image.save(rotated, exif=exif)
    assert load_image(rotated).shape == (image.width, image.height, 3)
    detector.predict(gray)
    detector.predict(rgba)


def test_checkpoint_with_other_classes_is_refused(tiny_checkpoint, tmp_path):
    full = torch.load(tiny_checkpoint, weights_only=False)
    checkpoint = {"state_dict": full["state_dict"], "meta": full["meta"]}  # weights only
    checkpoint["meta"]["dataset_meta"]["classes"] = tuple(f"c{i}" for i in range(6))
    other = tmp_path / "other.pth"
    torch.save(checkpoint, other)
    with pytest.raises(CarddError, match="not the six CarDD classes"):
        DamageDetector("tiny_DCN_plus", other, device="cpu")
    del checkpoint["meta"]["dataset_meta"]
    torch.save(checkpoint, other)
    with pytest.raises(CarddError, match="not the six CarDD classes"):
        DamageDetector("tiny_DCN_plus", other, device="cpu")


def test_checkpoint_of_another_architecture_is_refused(tiny_checkpoint):
    with pytest.raises(CarddError, match="does not fit"):
        DamageDetector("DCN_plus", tiny_checkpoint, device="cpu")


def test_rle_round_trip():
    from pycocotools import mask as mask_utils

    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    rle = encode_mask(mask)
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert (decoded.astype(bool) == mask).all()
