"""`--from`: a cardd model's weights as the start, class layers by the classes."""

import pytest
import torch

from cardd.core.errors import CarddError
from cardd.models.configs import load_config, set_classes
from cardd.structures.classes import CARDD, ClassSet
from cardd.train.fine_tune import class_dependent_weights, load_start_weights

CLASS_LAYERS = {
    f"roi_head.{layer}.{kind}"
    for layer in ("bbox_head.fc_cls", "bbox_head.fc_reg", "mask_head.conv_logits")
    for kind in ("weight", "bias")
}


def _model(classes: ClassSet, **backbone):
    from mmdet.registry import MODELS

    import cardd.openmmlab.plugins  # noqa: F401  (the kernels and registrations a run has)

    cfg = load_config("tiny_DCN_plus")
    set_classes(cfg, classes)
    cfg.model.backbone.update(backbone)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def test_the_class_layers_are_found_by_building_the_heads():
    cfg = load_config("tiny_DCN_plus")
    assert class_dependent_weights(cfg) == CLASS_LAYERS


def test_other_classes_start_their_class_layers_afresh_and_load_the_rest(tiny_export):
    three = ClassSet.from_categories([{"id": i, "name": f"c{i}"} for i in (0, 4, 7)])
    cfg, model = _model(three)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    line = load_start_weights(model, tiny_export, cfg)
    assert "re-initialised roi_head.bbox_head.fc_cls" in line and "now 3 classes" in line
    exported = torch.load(tiny_export, weights_only=True)["state_dict"]
    for name, value in model.state_dict().items():
        if name in CLASS_LAYERS:
            assert torch.equal(value, fresh[name]), name  # as initialised, not the file's
        else:
            assert torch.equal(value, exported[name]), name


def test_the_same_classes_load_every_weight(tiny_export):
    cfg, model = _model(CARDD)
    line = load_start_weights(model, tiny_export, cfg)
    assert "every weight loaded" in line
    exported = torch.load(tiny_export, weights_only=True)["state_dict"]
    assert all(torch.equal(v, exported[k]) for k, v in model.state_dict().items())


def test_another_architecture_or_no_file_is_refused(tiny_export, tmp_path):
    cfg, model = _model(CARDD, base_channels=8)
    with pytest.raises(CarddError, match="does not fit the run's model .* backbone.conv1.weight"):
        load_start_weights(model, tiny_export, cfg)
    partial = tmp_path / "partial.pth"
    contents = torch.load(tiny_export, weights_only=True)
    contents["state_dict"].pop("backbone.conv1.weight")
    torch.save(contents, partial)
    cfg, model = _model(CARDD)
    with pytest.raises(CarddError, match="it lacks backbone.conv1.weight"):
        load_start_weights(model, partial, cfg)
    with pytest.raises(CarddError, match="does not exist"):
        load_start_weights(model, tmp_path / "nowhere.pth", cfg)


def test_train_refuses_a_misfit_before_writing_anything(tiny_export, synthetic_root, tmp_path):
    from tests.conftest import run_cardd

    work_dir = tmp_path / "run"
    result = run_cardd(
        "train", "--config", "small_DCN_plus", "--data-root", synthetic_root,
        "--from", tiny_export, "--device", "cpu", "--work-dir", work_dir,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "does not fit the run's model" in result.stderr and "Traceback" not in result.stderr
    assert not work_dir.exists()
