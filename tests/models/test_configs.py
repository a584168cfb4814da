"""The config contract: the merged DCN_plus must hold the CarDD paper's recipe."""

import pytest

from cardd.core.errors import CarddUsageError
from cardd.models.configs import available_configs, load_config, resolve_config
from cardd.structures.classes import CLASSES, PALETTE


@pytest.fixture(scope="module")
def dcn_plus():
    return load_config("DCN_plus")


def test_dcn_plus_model_is_the_papers(dcn_plus):
    model = dcn_plus.model
    assert model.type == "MaskRCNN"
    assert model.backbone.type == "ResNet" and model.backbone.depth == 101
    assert model.backbone.dcn == dict(type="DCN", deform_groups=1, fallback_on_stride=False)
    assert tuple(model.backbone.stage_with_dcn) == (True, True, True, True)
    assert model.backbone.init_cfg is None  # load_from overwrites it: no ImageNet download
    assert model.neck.type == "FPN"
    bbox_head = model.roi_head.bbox_head
    assert bbox_head.num_classes == 6 and model.roi_head.mask_head.num_classes == 6
    assert dict(bbox_head.loss_cls) == dict(
        type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.5, loss_weight=1.0
    )


def test_dcn_plus_pipelines(dcn_plus):
    train = dcn_plus.train_dataloader.dataset.pipeline
    resize = next(step for step in train if "Resize" in step.type)
    assert resize == dict(
        type="RandomResize", scale=[(1333, 640), (1333, 1200)], keep_ratio=False, backend="pillow"
    )
    flip = next(step for step in train if step.type == "RandomFlip")
    assert flip.prob == 0.5
    for split in ("val", "test"):
        steps = dcn_plus[f"{split}_dataloader"].dataset.pipeline
        resizes = [s for s in steps if "Resize" in s.type]
        assert resizes == [dict(type="Resize", scale=(1333, 800), keep_ratio=True)]
        assert not any(s.type.startswith("Random") for s in steps)


def test_dcn_plus_schedule(dcn_plus):
    assert dcn_plus.train_dataloader.batch_size == 4
    assert dcn_plus.optim_wrapper.optimizer == dict(
        type="SGD", lr=0.005, momentum=0.9, weight_decay=0.0001
    )
    warmup, steps = dcn_plus.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ("LinearLR", False, 500)
    assert (steps.type, steps.milestones, steps.end) == ("MultiStepLR", [16, 22], 24)
    assert dcn_plus.train_cfg.max_epochs == 24 and dcn_plus.train_cfg.val_interval == 6
    assert dcn_plus.auto_scale_lr.base_batch_size == 4
    checkpoint = dcn_plus.default_hooks.checkpoint
    assert checkpoint.interval == 6 and checkpoint.save_best == "coco/bbox_mAP"
    assert dcn_plus.load_from == (
        "checkpoints/mask_rcnn_r101_fpn_dconv_c3-c5_1x_coco_20200216-a71f5bce.pth"
    )


def test_every_dataloader_carries_cardd_metainfo_and_relative_roots():
    for name in available_configs():
        cfg = load_config(name)
        for split in ("train", "val", "test"):
            dataset = cfg[f"{split}_dataloader"].dataset
            assert tuple(dataset.metainfo["classes"]) == CLASSES
            assert [tuple(c) for c in dataset.metainfo["palette"]] == list(PALETTE)
            assert not dataset.data_root.startswith("/")
            assert dataset.ann_file == f"annotations/instances_{split}2017.json"
        for split in ("val", "test"):
            evaluator = cfg[f"{split}_evaluator"]
            assert evaluator.classwise and evaluator.metric == ["bbox", "segm"]
            assert evaluator.ann_file == cfg[f"{split}_dataloader"].dataset.data_root + (
                f"annotations/instances_{split}2017.json"
            )


def test_small_and_tiny_inherit_and_shrink():
    small = load_config("small_DCN_plus")
    assert small.train_dataloader.dataset.data_root == "small_data/CarDD_COCO/"
    assert small.train_cfg.val_interval == 1 and small.default_hooks.checkpoint.interval == 1
    assert small.model.backbone.depth == 101
    tiny = load_config("tiny_DCN_plus")
    assert tiny.train_dataloader.dataset.data_root == "data/synthetic/CarDD_COCO/"
    assert tiny.model.backbone.depth == 50 and tiny.model.backbone.base_channels == 16
    assert tuple(tiny.model.backbone.stage_with_dcn) == (True, True, True, True)
    assert tiny.model.roi_head.bbox_head.loss_cls.type == "FocalLoss"
    assert tiny.load_from is None


def test_names_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("DCN_plus").name == "DCN_plus.py"
    assert set(available_configs()) >= {"DCN_plus", "small_DCN_plus", "tiny_DCN_plus"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(CarddUsageError, match="did you mean DCN_plus.*available: DCN_plus"):
        resolve_config("DCN_pluss")
    with pytest.raises(CarddUsageError, match="does not exist"):
        resolve_config("nowhere/x.py")


def test_config_text_round_trips_as_data(dcn_plus):
    from cardd.models.configs import config_from_text

    again = config_from_text(dcn_plus.pretty_text, "test")
    assert again.model.to_dict() == dcn_plus.model.to_dict()
    assert again.test_pipeline == dcn_plus.test_pipeline
    assert "custom_imports" not in again


@pytest.mark.parametrize(
    "text",
    [
        "import os\nx = 1",
        "x = __import__('os').system('true')",
        "x = dict(a=open('/etc/passwd'))",
        "x = [i for i in range(3)]",
        "x = y",
        "def f(): pass",
    ],
)
def test_config_text_with_code_is_refused(text):
    from cardd.core.errors import CarddError
    from cardd.models.configs import config_from_text

    with pytest.raises(CarddError, match="not plain data"):
        config_from_text(text, "model.pth")


def test_mmdet_bases_resolve_as_mmengine_resolves_them_reading_its_index_once():
    """cardd reads mmdet's model index once per process (mmengine reads it per `mmdet::`
    reference); every lookup answers as mmengine's own helper does."""
    from mmengine.config import utils
    from mmengine.utils import get_installed_path

    from cardd.models import configs

    load_config("DCN_plus")
    load_config("tiny_DCN_plus")
    assert utils._get_cfg_metainfo is configs._released_config
    assert configs.released_configs.cache_info().misses == 1  # one index for both loads
    mmdet = get_installed_path("mmdet")
    original = configs._released_config.mmengine_original
    names = list(configs.released_configs(mmdet))
    for name in [names[1], names[len(names) // 2], "_base_/models/mask-rcnn_r50_fpn", "nope"]:
        answers = []
        for lookup in (original, utils._get_cfg_metainfo):
            try:
                answers.append(lookup(mmdet, name))
            except ValueError:
                answers.append(ValueError)
        assert answers[0] == answers[1], name


def test_a_config_text_is_formatted_once_and_each_keeps_its_own():
    """mmengine re-runs yapf at every `pretty_text` (log, dump, each checkpoint); cardd keeps
    the result by text: read again, each config gives its own text, without formatting."""
    from mmengine.config import config as mmengine_config

    from cardd.models import configs

    big, tiny = load_config("DCN_plus"), load_config("tiny_DCN_plus")
    configs._FORMATTED.clear()
    texts = (big.pretty_text, tiny.pretty_text)
    assert texts[0] != texts[1] and "max_epochs = 24" in texts[0] and "max_epochs = 12" in texts[1]
    kept = dict(configs._FORMATTED)
    assert len(kept) == 2
    assert (big.pretty_text, tiny.pretty_text, big.pretty_text) == (*texts, texts[0])
    assert configs._FORMATTED == kept  # nothing formatted again
    assert mmengine_config.FormatCode.yapf_original.__module__ == "yapf.yapflib.yapf_api"
