"""Opening model files: one path for infer, eval, export and the API."""

import pytest
import torch

from cardd.core.errors import CarddError
from cardd.models import checkpoints
from cardd.models.model_file import build_model, open_model

pytestmark = pytest.mark.slow


def _weights_file(tiny_checkpoint, path, classes=None, drop=0):
    with checkpoints.trusting(tiny_checkpoint):
        full = checkpoints.load_file(tiny_checkpoint)
    state = dict(list(full["state_dict"].items())[drop:])
    meta = dict(full["meta"])
    if classes is not None:
        meta["dataset_meta"] = {**meta["dataset_meta"], "classes": classes}
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


def test_a_training_checkpoint_brings_its_own_config(tiny_checkpoint):
    from cardd.models.formats import RECORD_KEY

    meta = open_model(checkpoint=tiny_checkpoint).contents["meta"]
    record = meta[RECORD_KEY]  # written by cardd train with every checkpoint
    assert record["architecture"] == "tiny_DCN_plus" and record["classes"][0] == "dent"
    model_file = open_model(checkpoint=tiny_checkpoint)
    assert model_file.config_source == f"tiny_DCN_plus (recorded in {tiny_checkpoint})"
    assert model_file.cfg.model.backbone.base_channels == 16  # tiny, not DCN_plus
    named = open_model("tiny_DCN_plus", tiny_checkpoint)
    assert named.config_source.endswith("configs/tiny_DCN_plus.py")


def test_file_and_config_must_name_the_same_classes_in_order(tiny_checkpoint, tmp_path):
    from cardd.structures.classes import CLASSES

    swapped = list(CLASSES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    path = _weights_file(tiny_checkpoint, tmp_path / "swapped.pth", classes=swapped)
    with pytest.raises(CarddError, match="in another order"):
        open_model("tiny_DCN_plus", path)


def test_every_weight_must_fit(tiny_checkpoint, tmp_path):
    path = _weights_file(tiny_checkpoint, tmp_path / "partial.pth", drop=3)
    model_file = open_model("tiny_DCN_plus", path)  # loads: the file itself is fine
    with pytest.raises(CarddError, match="does not fit .*missing"):
        build_model(model_file, "cpu")
    with pytest.raises(CarddError, match="does not fit"):
        build_model(open_model("DCN_plus", tiny_checkpoint), "cpu")


def test_latest_and_best_of_a_work_dir(trained_work_dir, tmp_path):
    model_file = open_model("tiny_DCN_plus", "latest", work_dir=trained_work_dir)
    assert model_file.path == trained_work_dir / "epoch_1.pth"
    best = open_model(None, "best", work_dir=trained_work_dir)  # save_best kept one
    assert best.path.name.startswith("best_coco_bbox_mAP_epoch_")
    with pytest.raises(CarddError, match="--work-dir"):
        open_model("tiny_DCN_plus", "best", work_dir=tmp_path)
