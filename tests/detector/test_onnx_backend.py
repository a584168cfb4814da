"""The onnxruntime engine's numpy steps against the mmdet/mmcv code they reproduce, and the
ONNX files it refuses."""

import numpy as np
import pytest
import torch

from cardd.core.errors import CarddError, CarddUsageError
from cardd.detector.onnx_backend import (
    OnnxModel,
    is_onnx_model,
    onnx_providers,
    paste_mask,
    preprocess,
    resized_size,
)

PRE = {
    "resize_scale": [1333, 800],
    "interpolation": "bilinear",
    "mean": [123.675, 116.28, 103.53],
    "std": [58.395, 57.12, 57.375],
    "bgr_to_rgb": True,
    "pad_size_divisor": 32,
    "pad_value": 0.0,
}


def test_resized_size_is_mmcvs():
    import mmcv

    for height, width in [(768, 1024), (1024, 768), (333, 1001), (97, 131), (801, 1333),
                          (4000, 3000), (1, 5000), (799, 1334)]:  # fmt: skip
        new_w, new_h = mmcv.rescale_size((width, height), (1333, 800))
        assert resized_size(height, width, [1333, 800]) == (new_h, new_w)


def test_preprocess_is_mmdets_pipeline_and_data_preprocessor():
    """The network input of `preprocess` equals mmdet's test pipeline + DetDataPreprocessor,
    bit for bit, for landscape, portrait and odd sizes."""
    from mmcv.transforms import Compose
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmengine.dataset import pseudo_collate

    pipeline = Compose([
        dict(type="mmdet.LoadImageFromNDArray"),
        dict(type="mmdet.Resize", scale=(1333, 800), keep_ratio=True),
        dict(type="mmdet.PackDetInputs", meta_keys=("img_shape", "scale_factor", "ori_shape")),
    ])  # fmt: skip
    preprocessor = DetDataPreprocessor(mean=PRE["mean"], std=PRE["std"], bgr_to_rgb=True,
                                       pad_size_divisor=32)  # fmt: skip
    rng = np.random.default_rng(0)
    for height, width in [(768, 1024), (1024, 768), (333, 1001), (97, 131)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        data = preprocessor(pseudo_collate([pipeline({"img": image, "img_id": 0})]), False)
        meta = data["data_samples"][0].metainfo
        tensor, size, factors = preprocess(image, PRE)
        assert size == meta["img_shape"]
        assert factors == pytest.approx(meta["scale_factor"], abs=0)
        np.testing.assert_array_equal(tensor, data["inputs"].numpy())


def test_paste_mask_is_mmdets():
    """Masks pasted into the photo as mmdet pastes them on the CPU (`_do_paste_mask`), for
    boxes inside, across the edges, below a pixel and of no width."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    rng = np.random.default_rng(1)
    height, width = 240, 320
    boxes = [
        (10.3, 20.7, 110.2, 90.9), (-5.0, -3.0, 40.0, 30.0), (250.5, 200.2, 330.0, 260.0),
        (100.0, 100.0, 100.6, 100.4), (50.0, 60.0, 50.0, 90.0), (0.0, 0.0, 320.0, 240.0),
    ]  # fmt: skip
    for box in boxes:
        probabilities = rng.random((28, 28), dtype=np.float32)
        theirs, where = _do_paste_mask(
            torch.from_numpy(probabilities)[None, None], torch.tensor([box]), height, width,
            skip_empty=True,
        )
        expected = np.zeros((height, width), dtype=bool)
        expected[where] = (theirs[0] >= 0.5).numpy()
        got = paste_mask(probabilities, box, height, width)
        # the same sums in another order: at most a pixel or two on the 0.5 line
        assert np.count_nonzero(got != expected) <= 2, box
        assert got.sum() == pytest.approx(expected.sum(), abs=2)


def test_providers():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert onnx_providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(CarddError, match="no CUDA provider"):
            onnx_providers("cuda:0")
    with pytest.raises(CarddUsageError):
        onnx_providers("gpu")


def test_is_onnx_model():
    assert is_onnx_model("m.onnx") and is_onnx_model("dir/M.ONNX")
    assert not is_onnx_model("m.pth") and not is_onnx_model("latest")


def _tiny_graph(path, metadata=None, external=None):
    """A one-node ONNX model (y = x + 1), with cardd metadata or an external-data weight."""
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    if external:
        one.data_location = TensorProto.EXTERNAL
        one.ClearField("float_data")
        for key, value in (("location", external), ("offset", "0"), ("length", "4")):
            entry = one.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [one],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "cardd", metadata
    path.write_bytes(model.SerializeToString())
    return path


def test_refuses_onnx_files_that_are_not_cardd_exports(tmp_path):
    with pytest.raises(CarddError, match="not a cardd export"):
        OnnxModel(_tiny_graph(tmp_path / "plain.onnx"))
    with pytest.raises(CarddError, match="format"):
        OnnxModel(_tiny_graph(tmp_path / "old.onnx", metadata='{"format": 99}'))
    with pytest.raises(CarddError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_external_data_is_never_read(tmp_path):
    """A graph whose weight names a file outside its folder (`../secret`, or an absolute
    path) is refused by onnxruntime, before anything runs."""
    secret = tmp_path / "secret"
    secret.write_bytes(np.float32(41).tobytes())
    (tmp_path / "models").mkdir()
    for location in ("../secret", str(secret)):
        path = _tiny_graph(tmp_path / "models" / "evil.onnx", external=location)
        with pytest.raises(CarddError, match="not an ONNX model onnxruntime can run"):
            OnnxModel(path)


GOOD_METADATA = {
    "dataset_meta": {"classes": ["dent", "scratch"]},
    "preprocessing": {"resize_scale": [1333, 800], "mean": [123.675, 116.28, 103.53],
                      "std": [58.395, 57.12, 57.375], "bgr_to_rgb": True,
                      "pad_size_divisor": 32, "pad_value": 0, "pad_size": [640, 640],
                      "pad_pixel": [114, 114, 114]},
    "max_per_img": 100, "mask_thr_binary": 0.5, "test_score_thr": 0.05,
    "masks": {"layout": "image", "stride": 8},
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_per_img", "lots"), ("max_per_img", 10**9), ("max_per_img", 1.5),
        ("mask_thr_binary", float("nan")), ("test_score_thr", -1), ("dataset_meta", [1]),
        ("preprocessing", "x"), ("preprocessing.resize_scale", [0, 0]),
        ("preprocessing.pad_size_divisor", 1e7), ("preprocessing.std", [0, 1, 1]),
        ("preprocessing.mean", [1, 2]), ("preprocessing.bgr_to_rgb", "yes"),
        ("preprocessing.pad_size", [640]), ("preprocessing.pad_size", [10**6, 640]),
        ("preprocessing.pad_pixel", [114, 114]), ("preprocessing.pad_pixel", [-1, 0, 0]),
        ("masks", {"layout": "cube"}), ("masks", {"layout": "image", "stride": 0}),
        ("masks", "box"),
    ],
)  # fmt: skip
def test_metadata_out_of_shape_or_range_is_refused(field, value):
    import copy

    from cardd.detector.onnx_backend import check_metadata

    check_metadata(GOOD_METADATA, "m.onnx")  # the control: what cardd export writes passes
    meta = copy.deepcopy(GOOD_METADATA)
    if "." in field:
        meta["preprocessing"][field.split(".", 1)[1]] = value
    else:
        meta[field] = value
    with pytest.raises(CarddError, match=f"m.onnx: its cardd metadata's {field} is "):
        check_metadata(meta, "m.onnx")


def _outputs(count=2):
    return (np.zeros((count, 4), np.float32) + [1, 2, 3, 4], np.full(count, 0.5, np.float32),
            np.arange(count, dtype=np.int64), np.zeros((count, 28, 28), np.float32))  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o[2].__setitem__(0, -1), "labels outside the 2 classes"),
        (lambda o: o[2].__setitem__(1, 2), "labels outside the 2 classes"),
        (lambda o: o[0].__setitem__((0, 0), np.nan), "not finite"),
        (lambda o: o[1].__setitem__(0, 7.0), "scores outside 0..1"),
    ],
)
def test_graph_outputs_that_are_not_detections_are_refused(change, message):
    from cardd.detector.onnx_backend import check_outputs

    outputs = _outputs()
    check_outputs(*outputs, classes=2, limit=10, where="m.onnx")  # the control
    change(outputs)
    with pytest.raises(CarddError, match=message):
        check_outputs(*outputs, classes=2, limit=10, where="m.onnx")
    with pytest.raises(CarddError, match="3 scores for a limit of 2"):
        check_outputs(*_outputs(3), classes=2, limit=2, where="m.onnx")
    boxes, scores, labels, masks = _outputs()
    with pytest.raises(CarddError, match="masks"):
        check_outputs(boxes, scores, labels, masks[:1], classes=2, limit=10, where="m.onnx")


#: RTMDet-Ins's test pipeline and data preprocessor (mmdet's rtmdet configs).
RTMDET_PRE = {
    "resize_scale": [640, 640],
    "interpolation": "bilinear",
    "mean": [103.53, 116.28, 123.675],
    "std": [57.375, 57.12, 58.395],
    "bgr_to_rgb": False,
    "pad_size_divisor": 1,
    "pad_value": 0.0,
    "pad_size": [640, 640],
    "pad_pixel": [114.0, 114.0, 114.0],
}


def test_preprocess_with_a_fixed_pad_is_rtmdets_pipeline():
    """RTMDet's Resize to 640 and grey Pad to 640x640 before normalisation: the network
    input, mmdet's img_shape (the padded size) and the factors, bit for bit."""
    from mmcv.transforms import Compose
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmengine.dataset import pseudo_collate

    pipeline = Compose([
        dict(type="mmdet.LoadImageFromNDArray"),
        dict(type="mmdet.Resize", scale=(640, 640), keep_ratio=True),
        dict(type="mmdet.Pad", size=(640, 640), pad_val=dict(img=(114, 114, 114))),
        dict(type="mmdet.PackDetInputs", meta_keys=("img_shape", "scale_factor", "ori_shape")),
    ])  # fmt: skip
    preprocessor = DetDataPreprocessor(mean=RTMDET_PRE["mean"], std=RTMDET_PRE["std"],
                                       bgr_to_rgb=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for height, width in [(768, 1024), (1024, 768), (333, 1001), (97, 131)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        data = preprocessor(pseudo_collate([pipeline({"img": image, "img_id": 0})]), False)
        meta = data["data_samples"][0].metainfo
        tensor, size, factors = preprocess(image, RTMDET_PRE)
        assert size == meta["img_shape"] == (640, 640)
        assert factors == pytest.approx(meta["scale_factor"], abs=0)
        np.testing.assert_array_equal(tensor, data["inputs"].numpy())


def _blobs(rng, count: int, cells: int):
    """Mask logits like a model's: smooth blobs, one all below the threshold, one above."""
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
    logits = []
    for _ in range(count):
        cy, cx, radius = rng.uniform(0, cells), rng.uniform(0, cells), rng.uniform(2, cells / 3)
        logits.append(4 * (1 - np.hypot(ys - cy, xs - cx) / radius))
    logits[0] = np.full((cells, cells), -3, np.float32)
    logits[1] = np.full((cells, cells), 2, np.float32)
    return np.stack(logits).astype(np.float32)


def test_image_masks_are_rtmdets_post_processing():
    """An RTMDet-Ins's mask logits into photo masks as mmdet 3.3's own
    `RTMDetInsHead._bbox_mask_post_process` makes them (its two interpolations, crop and
    sigmoid > 0.5), for landscape, portrait, odd and tiny photos: within a pixel or two."""
    from mmdet.models.dense_heads import RTMDetInsSepBNHead
    from mmengine.config import ConfigDict
    from mmengine.structures import InstanceData

    from cardd.detector.onnx_backend import ImageMasks

    head = RTMDetInsSepBNHead(num_classes=2, in_channels=8, feat_channels=8, anchor_generator=dict(
        type="MlvlPointGenerator", offset=0, strides=[8, 16, 32]))  # RTMDet's
    cfg = ConfigDict(nms=dict(type="nms", iou_threshold=0.6), max_per_img=100,
                     mask_thr_binary=0.5, min_bbox_size=-1)  # fmt: skip
    rng = np.random.default_rng(2)
    for height, width in [(768, 1024), (1024, 768), (333, 1001), (97, 131)]:
        logits = _blobs(rng, 6, 80)
        _, _, factors = preprocess(np.zeros((height, width, 3), np.uint8), RTMDET_PRE)
        count = len(logits)
        results = InstanceData(  # far-apart boxes, scores best first: NMS keeps all, in order
            bboxes=torch.tensor([[i * 100.0, 0, i * 100 + 50, 50] for i in range(count)]),
            scores=torch.linspace(0.9, 0.4, count), labels=torch.zeros(count, dtype=torch.long),
            priors=torch.zeros(count, 4), kernels=torch.zeros(count, head.num_gen_params))
        head._mask_predict_by_feat_single = lambda *args, x=logits: torch.from_numpy(x)
        meta = {"scale_factor": factors, "ori_shape": (height, width)}
        theirs = head._bbox_mask_post_process(results, None, cfg, rescale=True, img_meta=meta)
        painter = ImageMasks(logits, 8, factors, height, width, 0.5)
        for index in range(count):
            expected = theirs.masks[index].numpy()
            got = painter.mask(index)
            assert got.shape == expected.shape == (height, width)
            assert np.count_nonzero(got != expected) <= 2, (height, width, index)
        assert not painter.mask(0).any() and painter.mask(1).all()
