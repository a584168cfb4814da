"""`cardd export`: one file that loads weights-only anywhere and runs the same model."""

import json

import pytest
import torch
from click.testing import CliRunner

from cardd import DamageDetector
from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.models import checkpoints
from cardd.models.formats import EXPORT_KEY
from cardd.structures.classes import CLASSES
from tests.conftest import Trap, run_cardd

pytestmark = pytest.mark.slow


def _export(*args):
    return CliRunner().invoke(cli, ["export", *args])


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny.pth"
    result = _export("--checkpoint", str(tiny_checkpoint), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result.output


def test_loads_weights_only_and_describes_itself(exported, tiny_checkpoint):
    path, output = exported
    contents = torch.load(path, weights_only=True)  # plain torch, no allowlist
    description = contents[EXPORT_KEY]
    assert description["classes"] == list(CLASSES)
    assert description["epoch"] == 1
    record = description["model"]  # data about a shipped config, never a config's text
    assert "config" not in description
    assert record["architecture"] == "tiny_DCN_plus"
    assert record["classes"] == list(CLASSES) and record["category_ids"] == [1, 2, 3, 4, 5, 6]
    assert record["test_cfg"]["rcnn"]["max_per_img"] == 50
    assert record["test_resize"] == [320, 256]
    assert set(description["versions"]) >= {"cardd", "mmdet", "torch", "mmengine", "mmcv"}
    assert description["source_sha256"] == checkpoints.file_sha256(tiny_checkpoint)
    # validation metrics of that epoch, from the run's scalar log
    assert "coco/bbox_mAP" in description["metrics"]
    assert "coco/bbox_mAP_s_cardd" in description["metrics"]
    assert tuple(contents["meta"]["dataset_meta"]["classes"]) == CLASSES
    assert "optimizer" not in contents and "message_hub" not in contents
    assert f"sha256 {checkpoints.file_sha256(path)}" in output
    assert path.stat().st_size < tiny_checkpoint.stat().st_size


def test_same_detections_as_the_checkpoint_without_a_config(
    exported, tiny_checkpoint, synthetic_root
):
    path, _ = exported
    image = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    original = DamageDetector("tiny_DCN_plus", tiny_checkpoint, device="cpu", score_thr=0.0)
    from_export = DamageDetector(checkpoint=path, device="cpu", score_thr=0.0)
    assert from_export.config_source.startswith("tiny_DCN_plus (recorded in")
    ours, theirs = from_export.predict(image), original.predict(image)
    assert len(ours) == len(theirs) > 0
    assert [d.label for d in ours] == [d.label for d in theirs]
    assert [d.score for d in ours] == pytest.approx([d.score for d in theirs], abs=1e-6)


def test_half_is_smaller_and_close(exported, tiny_checkpoint, synthetic_root, tmp_path):
    full, _ = exported
    half = tmp_path / "half.pth"
    assert (
        _export("--checkpoint", str(tiny_checkpoint), "--out", str(half), "--half").exit_code == 0
    )
    state = torch.load(half, weights_only=True)["state_dict"]
    assert all(t.dtype == torch.float16 for t in state.values() if t.is_floating_point())
    assert half.stat().st_size < 0.6 * full.stat().st_size
    image = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    top = DamageDetector(checkpoint=full, device="cpu", score_thr=0.0).predict(image)[:5]
    top_half = DamageDetector(checkpoint=half, device="cpu", score_thr=0.0).predict(image)[:5]
    assert [d.score for d in top_half] == pytest.approx([d.score for d in top], abs=0.02)


def test_plain_mmdetection_loads_the_weights(exported):
    from mmdet.apis import init_detector

    from cardd.models.record import config_from_record

    path, _ = exported
    contents = torch.load(path, weights_only=True)
    cfg, _ = config_from_record(contents[EXPORT_KEY]["model"], str(path))
    cfg.model.backbone.init_cfg = None
    model = init_detector(cfg, None, device="cpu")
    missing = model.load_state_dict(contents["state_dict"], strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys


def test_infer_and_eval_take_an_export(exported, synthetic_root, tmp_path):
    """Without --config, in fresh processes: the export alone is enough."""
    path, _ = exported
    infer = run_cardd(
        "infer", synthetic_root / "test2017", "--checkpoint", path, "--device", "cpu",
        "--out-dir", tmp_path / "infer", "--no-vis",
    )  # fmt: skip
    assert infer.returncode == 0, infer.stdout + infer.stderr
    summary = json.loads((tmp_path / "infer" / "summary.json").read_text())
    assert summary["config"].startswith("tiny_DCN_plus (recorded in")
    evaluation = run_cardd(
        "eval", "--checkpoint", path, "--data-root", synthetic_root, "--split", "val",
        "--device", "cpu", "--out", tmp_path / "eval",
    )  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 2


def test_code_in_an_embedded_config_is_never_run(exported, tmp_path):
    """A format-1 export (config text, no record) whose text is code: refused unread."""
    path, _ = exported
    contents = torch.load(path, weights_only=True)
    sentinel = tmp_path / "config-ran"
    del contents[EXPORT_KEY]["model"]
    contents[EXPORT_KEY]["config"] = f"import os\nos.mkdir({str(sentinel)!r})\n"
    evil = tmp_path / "evil.pth"
    torch.save(contents, evil)
    with pytest.raises(CarddError, match="not plain data"):
        DamageDetector(checkpoint=evil, device="cpu")
    assert not sentinel.exists()


def test_refusals(exported, tiny_checkpoint, tmp_path):
    path, _ = exported
    again = _export("--checkpoint", str(tiny_checkpoint), "--out", str(path))
    assert again.exit_code == 2 and "--force" in again.output
    trap = tmp_path / "trap.pth"
    torch.save({"state_dict": {}, "meta": {"x": Trap(tmp_path / "ran")}}, trap)
    refused = _export("--checkpoint", str(trap), "--out", str(tmp_path / "x.pth"))
    assert refused.exit_code == 1 and "--trust-checkpoint" in refused.output
    assert not (tmp_path / "ran").exists() and not (tmp_path / "x.pth").exists()
