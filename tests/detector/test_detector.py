"""`DamageDetector`: the Python API, on a tiny_DCN_plus checkpoint trained in the session."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cardd import DamageDetector, Detection
from cardd.core.errors import CarddError
from cardd.structures.classes import CLASSES
from cardd.structures.images import UnreadableImage, load_image
from cardd.structures.results import encode_mask

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
    with pytest.raises(CarddError, match="trained for 6 classes: 1 c0, .* is for other classes"):
        DamageDetector("tiny_DCN_plus", other, device="cpu")
    del checkpoint["meta"]["dataset_meta"]  # a plain state dict: the config names the classes
    torch.save(checkpoint, other)
    assert DamageDetector("tiny_DCN_plus", other, device="cpu").classes.names == CLASSES


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


def _pycocotools_rle(mask) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_rle_is_byte_for_byte_pycocotools_own():
    """cardd encodes within the mask's extent: the same text as pycocotools' whole-image
    encoder for every shape: empty, full, runs across column ends, single pixels, edges."""
    rng = np.random.default_rng(0)
    cases = [np.zeros((4, 3), bool), np.ones((4, 3), bool), np.ones((1, 1), bool)]
    column = np.zeros((6, 5), bool)
    column[:, 2:4] = True  # full-height columns: one run across the column boundary
    corner = np.zeros((6, 5), bool)
    corner[-1, -1] = corner[0, 0] = True
    cases += [column, corner]
    for _ in range(400):
        height, width = rng.integers(1, 14, 2)
        cases.append(rng.random((height, width)) < rng.choice([0.05, 0.5, 0.95]))
    photo = np.zeros((1512, 2016), bool)  # a detection-like blob in a photo
    yy, xx = np.ogrid[:1512, :2016]
    photo[(yy - 600) ** 2 / 150**2 + (xx - 900) ** 2 / 200**2 < 1] = True
    photo[700:720, 800:1000] = False
    cases.append(photo)
    for mask in cases:
        assert encode_mask(mask) == _pycocotools_rle(mask), mask


def test_image_result_is_the_one_source_of_json_and_csv(detector, test_image):
    from cardd.structures.results import CSV_HEADER

    result = detector.detect([load_image(test_image)], ["claims/car.jpg"], score_thr=0.1)[0]
    document = result.to_dict()
    assert document["image"] == "claims/car.jpg" and document["score_thr"] == 0.1
    assert document["checkpoint"] == str(detector.checkpoint)
    assert all(d["score"] >= 0.1 for d in document["detections"])
    rows = result.csv_rows()
    assert len(rows) == len(document["detections"])
    assert all(len(row) == len(CSV_HEADER) and row[0] == "claims/car.jpg" for row in rows)
    # a per-call threshold does not change the detector's
    assert detector.score_thr == 0.0
    assert len(detector.detect([load_image(test_image)])[0].detections) >= len(rows)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height but which holds almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


def test_decode_refuses_bombs_from_the_header_and_bad_bytes(test_image):
    from cardd.structures.images import UnreadableImage, decode_image_bytes

    with pytest.raises(UnreadableImage, match="over the limit") as error:
        decode_image_bytes(_png_header_claiming(100_000, 100_000), max_pixels=50_000_000)
    assert error.value.too_large
    for data, message in ((b"", "empty"), (b"hello", "not an image")):
        with pytest.raises(UnreadableImage, match=message):
            decode_image_bytes(data)
    data = test_image.read_bytes()
    with pytest.raises(UnreadableImage):
        decode_image_bytes(data[: len(data) // 2])
    assert (decode_image_bytes(data) == load_image(test_image)).all()


def test_the_threshold_and_count_reach_the_models_test_settings(detector, test_image):
    """mmdet drops boxes below its own `score_thr` (0.05) and keeps `max_per_img` masks
    before cardd sees them: a call's threshold and count must be mmdet's for that call."""
    seen = []
    head = detector.model.roi_head
    predict = head.predict

    def recording(*args, **kwargs):  # what mmdet's RoI head holds while it predicts
        seen.append((head.test_cfg.score_thr, head.test_cfg.max_per_img))
        return predict(*args, **kwargs)

    head.predict = recording
    try:
        few = detector.detect([load_image(test_image)], score_thr=0.0, max_detections=3)[0]
        detector.detect([load_image(test_image)], score_thr=0.6)
    finally:
        del head.predict
    assert seen[0][0] < 0.0 + 1e-2 and seen[0][1] == 3
    assert 0.59 < seen[1][0] <= 0.6 and seen[1][1] == 50  # the tiny config's own count
    assert len(few.detections) == 3
    assert (head.test_cfg.score_thr, head.test_cfg.max_per_img) == (0.05, 50)  # restored


def test_arrays_other_than_uint8_are_refused(detector):
    with pytest.raises(UnreadableImage, match="dtype float32.*uint8"):
        detector.predict(np.full((64, 64, 3), 0.5, np.float32))
    with pytest.raises(UnreadableImage, match="dtype uint16"):
        detector.predict(np.zeros((64, 64, 3), np.uint16))


def test_photos_decode_once_and_as_pil_decodes_them(tmp_path):
    """The OpenCV path (8-bit JPEG, PNG) gives PIL's picture: same size, same
    orientation, pixels within JPEG decoders' rounding."""
    import io

    from PIL import Image

    from cardd.structures.images import decode_image_bytes, decode_image_bytes_with_pil

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))
    cases = {}
    for fmt, mode in (("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "RGBA")):
        buffer = io.BytesIO()
        picture.convert(mode).save(buffer, fmt)
        cases[f"{fmt} {mode}"] = buffer.getvalue()
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(rotated, "JPEG", exif=exif)
    cases["JPEG rotated"] = rotated.getvalue()
    for name, data in cases.items():
        fast, reference = decode_image_bytes(data), decode_image_bytes_with_pil(data)
        assert fast.shape == reference.shape and fast.dtype == np.uint8, name
        assert np.abs(fast.astype(int) - reference).max() <= 2, name
    assert decode_image_bytes(cases["JPEG rotated"]).shape == (90, 60, 3)  # turned upright


def test_the_loaded_file_is_dropped_once_the_model_holds_the_weights(tiny_checkpoint):
    """A training checkpoint also holds the optimizer state: kept, it doubles the memory."""
    from cardd.models import checkpoints

    detector = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu")
    assert detector.model_file.contents == {}
    assert detector.model_file.sha256 == checkpoints.file_sha256(tiny_checkpoint)


def test_calling_the_detector_gives_results_that_draw_save_and_say_themselves(
    detector, test_image, tmp_path
):
    """`detector(photo)` -> one `ImageResult` that keeps its photo; a list -> a list, one
    batch; `save` writes the files `cardd infer` writes for it, and no others."""
    result = detector(test_image)
    assert result.ok and result.path == test_image and result.pixels.shape[2] == 3
    assert set(result.timing_ms) == {"decode"} and result.timing_ms["decode"] >= 0
    same = detector.detect([load_image(test_image)], [str(test_image)], score_thr=0.0)[0]
    assert result.to_dict() == same.to_dict()
    counts = {}
    for d in result.detections:
        counts[d.label] = counts.get(d.label, 0) + 1
    assert result.summary().startswith(f"{result.width}x{result.height} ")
    assert all(f"{n} {label}" in result.summary() for label, n in counts.items())
    drawn = result.plot()
    assert drawn.shape == result.pixels.shape and (drawn != result.pixels).any()
    written = result.save(tmp_path / "out")
    name = test_image.name
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(
        [f"vis/{name}", f"thumbs/{name}.jpg", f"preds/{name}.json"]
    )
    assert json.loads((tmp_path / "out" / "preds" / f"{name}.json").read_text()) == json.loads(
        json.dumps(result.to_dict())
    )
    both = detector([test_image, np.asarray(Image.open(test_image))[:, :, ::-1]])
    assert [r.image for r in both] == [str(test_image), "image1"]
    assert both[0].to_dict() == both[1].to_dict() | {"image": str(test_image)}
    from_array = both[1].save(tmp_path / "array")  # no name of its own: a PNG named so
    assert sorted(p.relative_to(tmp_path / "array").as_posix() for p in from_array) == [
        "preds/image1.json", "thumbs/image1.jpg", "vis/image1.png"
    ]  # fmt: skip
    assert Image.open(tmp_path / "array" / "vis" / "image1.png").format == "PNG"
    bare = detector.detect([load_image(test_image)])[0]  # no photo kept: say so
    with pytest.raises(ValueError, match="pass it"):
        bare.plot()


def test_stream_reads_folders_and_globs_and_turns_failures_into_results(
    detector, synthetic_root, tmp_path
):
    """`stream` lists folders and globs as `cardd infer` does, runs them in batches, and a
    photo it cannot read is a result with `error` set, in its place in the order."""
    photos = sorted((synthetic_root / "test2017").glob("*.jpg"))
    folder = tmp_path / "claims"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "a_broken.jpg").write_bytes(b"not a photo")
    results = list(detector.stream(folder, batch_size=2, workers=2))
    names = [r.name.as_posix() for r in results]
    assert names == sorted(f"claims/{p.name}" for p in [*photos, folder / "a_broken.jpg"])
    (broken,) = [r for r in results if r.name.name == "a_broken.jpg"]
    good = [r for r in results if r is not broken]
    assert not broken.ok and "a_broken.jpg" in broken.error and broken.detections == []
    assert all(r.ok and set(r.timing_ms) == {"decode", "model"} for r in good)
    one_by_one = {r.image: r.to_dict() for r in detector.stream(folder) if r.ok}
    single = {r.image: r.to_dict() for r in (detector(p) for p in folder.glob("0*.jpg"))}
    assert one_by_one == single and set(one_by_one) == {r.image for r in good}
    globbed = list(detector.stream(str(folder / "*.jpg"), workers=0))
    assert [r.name.as_posix() for r in globbed] == sorted(p.name for p in folder.glob("*.jpg"))
    with pytest.raises(CarddError, match="does not exist"):
        list(detector.stream(tmp_path / "nowhere"))
