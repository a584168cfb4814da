"""The model families cardd trains, and the COCO weights each starts from: one table for
`cardd download-weights --model`, `cardd doctor`, the training error that names the
weights to fetch, and the docs. Plain data: no imports, instant for `--help`.

The configs name the same files in their `load_from` (tested); the COCO numbers are
MMDetection's own (its model zoo, mmdet 3.3.0).
"""

from __future__ import annotations

from dataclasses import dataclass

_OPENMMLAB = "https://download.openmmlab.com/mmdetection"


@dataclass(frozen=True)
class StartPoint:
    """COCO weights a cardd config fine-tunes from."""

    model: str  # the name `cardd download-weights --model` takes
    config: str  # the cardd config whose `load_from` it is
    url: str  # its OpenMMLab address; the file name carries its sha256 prefix
    coco: str  # COCO box and mask AP, MMDetection's figures
    compute: str  # what one photo costs, MMDetection's figures
    use: str  # what the family is for

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


START_POINTS = (
    StartPoint(
        model="dcn-plus",
        config="DCN_plus",
        url=f"{_OPENMMLAB}/v2.0/dcn/mask_rcnn_r101_fpn_dconv_c3-c5_1x_coco/"
        "mask_rcnn_r101_fpn_dconv_c3-c5_1x_coco_20200216-a71f5bce.pth",
        coco="box AP 43.5, mask AP 38.9 (Mask R-CNN R-101 DCN)",
        compute="1333x800 input, deformable convolutions",
        use="the CarDD paper's best model: accuracy first, a GPU to serve it",
    ),
    StartPoint(
        model="rtmdet-ins-t",
        config="RTMDet_ins_t",
        url=f"{_OPENMMLAB}/v3.0/rtmdet/rtmdet-ins_tiny_8xb32-300e_coco/"
        "rtmdet-ins_tiny_8xb32-300e_coco_20221130_151727-ec670f7e.pth",
        coco="box AP 40.5, mask AP 35.4",
        compute="640x640 input, 11.8 GFLOPs",
        use="the fast family, smallest: the slowest machines",
    ),
    StartPoint(
        model="rtmdet-ins-s",
        config="RTMDet_ins_s",
        url=f"{_OPENMMLAB}/v3.0/rtmdet/rtmdet-ins_s_8xb32-300e_coco/"
        "rtmdet-ins_s_8xb32-300e_coco_20221121_212604-fdc5d7ec.pth",
        coco="box AP 44.0, mask AP 38.7",
        compute="640x640 input, 21.5 GFLOPs",
        use="the fast family: CPU servers, many photos per claim",
    ),
    StartPoint(
        model="rtmdet-ins-m",
        config="RTMDet_ins_m",
        url=f"{_OPENMMLAB}/v3.0/rtmdet/rtmdet-ins_m_8xb32-300e_coco/"
        "rtmdet-ins_m_8xb32-300e_coco_20221123_001039-6eba602e.pth",
        coco="box AP 48.8, mask AP 42.1",
        compute="640x640 input, 54 GFLOPs",
        use="the fast family, more accurate: a small GPU or a patient CPU",
    ),
)

#: `--model` names, in the table's order.
MODEL_NAMES = tuple(point.model for point in START_POINTS)


def start_point(model: str) -> StartPoint:
    """The start point named `model` (one of `MODEL_NAMES`)."""
    return next(point for point in START_POINTS if point.model == model)


def start_point_of_file(filename: str) -> StartPoint | None:
    """The start point whose file is `filename` (a config's `load_from`), if any."""
    return next((point for point in START_POINTS if point.filename == filename), None)
