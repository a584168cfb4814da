"""The fast family, RTMDet-Ins, through every command as DCN+ goes: trained with its own
recipe, evaluated, run (PyTorch and onnxruntime without PyTorch, with the same
answers), exported, served and assessed, each in a fresh process as a user runs it.

The model is `tiny_RTMDet_ins` trained for a minute on the synthetic data
(`rtmdet_checkpoint` in conftest): the real mmdet model, narrow and from scratch.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import broken_links, read_json, run_cardd
from tests.support import live_service
from tests.support.engines import (
    NO_TORCH,
    assert_same_answers,
    infer_docs,
    photos_list,
    without_torch,
)
from tests.support.engines import infer_docs_of as infer

pytestmark = pytest.mark.slow


def test_the_recipe_scales_with_max_epochs():
    """--max-epochs keeps the recipe's shape: the cosine half, the switch to plain
    augmentations near the end and the validation of every late epoch all move."""
    from cardd.train.options import TrainOptions
    from cardd.train.runner import build_config

    cfg = build_config(TrainOptions(config="RTMDet_ins_s", max_epochs=12), check_files=False)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.by_epoch, warmup.end) == (False, 300)  # iterations: unchanged
    assert (cosine.begin, cosine.end, cosine.T_max) == (6, 12, 6)
    switch = next(h for h in cfg.custom_hooks if h["type"] == "PipelineSwitchHook")
    assert switch["switch_epoch"] == 10 and cfg.train_cfg.dynamic_intervals == [(10, 1)]
    full = build_config(TrainOptions(config="RTMDet_ins_s"), check_files=False)
    assert (full.param_scheduler[1].begin, full.train_cfg.max_epochs) == (18, 36)
    assert [h["type"] for h in full.custom_hooks] == [
        "EMAHook", "PipelineSwitchHook", "CarddPlotHook", "CarddStartupHook"]  # fmt: skip


def test_configs_are_mmdets_with_cardd_data():
    """RTMDet_ins_t/s/m are mmdet's models and test settings with CarDD's six classes, data
    and metric: nothing else differs at test time."""
    from cardd.models.configs import load_config
    from cardd.structures.classes import CLASSES

    for name, widen in (("RTMDet_ins_t", 0.375), ("RTMDet_ins_s", 0.5), ("RTMDet_ins_m", 0.75)):
        cfg = load_config(name)
        assert cfg.model.type == "RTMDet" and cfg.model.bbox_head.type == "RTMDetInsSepBNHead"
        assert cfg.model.backbone.widen_factor == widen and cfg.model.bbox_head.num_classes == 6
        assert cfg.model.backbone.init_cfg is None  # no ImageNet download before load_from
        assert tuple(cfg.metainfo["classes"]) == CLASSES
        assert cfg.test_dataloader.dataset.ann_file == "annotations/instances_test2017.json"
        assert cfg.val_evaluator.type == cfg.test_evaluator.type == "CarddCocoMetric"
        assert cfg.model.test_cfg.mask_thr_binary == 0.5 and cfg.model.test_cfg.nms_pre == 1000


def test_training_writes_a_recorded_ema_checkpoint(rtmdet_checkpoint):
    """The run's checkpoint records its shipped architecture (so every command builds it
    without a config), holds mmdet's EMA weights, and the run drew its curves."""
    from cardd.models import checkpoints
    from cardd.models.formats import RECORD_KEY

    with checkpoints.trusting(rtmdet_checkpoint):
        contents = checkpoints.load_file(rtmdet_checkpoint)
    assert contents["meta"][RECORD_KEY]["architecture"] == "tiny_RTMDet_ins"
    assert "ema_state_dict" in contents  # EMAHook's: the EMA weights are `state_dict`
    assert (rtmdet_checkpoint.parent / "plots" / "training_curves.png").is_file()


def test_eval_scores_in_the_papers_size_bins(rtmdet_checkpoint, synthetic_root, tmp_path):
    out = tmp_path / "eval"
    done = run_cardd("eval", "--checkpoint", rtmdet_checkpoint, "--data-root", synthetic_root,
                     "--split", "test", "--device", "cpu", "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = read_json(out / "metrics.json")
    assert metrics["config"].startswith("tiny_RTMDet_ins (recorded in")
    for iou_type in ("bbox", "segm"):
        assert set(metrics[iou_type]["cardd_bins"]) == {"APs", "APm", "APl"}
    assert not broken_links(out / "report.html")


def test_onnx_export_is_the_one_stage_graph(rtmdet_onnx):
    import onnx

    path, output = rtmdet_onnx
    assert "checked with onnxruntime against PyTorch" in output
    model = onnx.load(str(path))
    kinds = {node.op_type for node in model.graph.node}
    assert "NonMaxSuppression" in kinds and "MatMul" in kinds  # NMS, the dynamic kernels
    assert not kinds & {"DeformConv", "RoiAlign"} and all(not n.domain for n in model.graph.node)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["cardd"])
    assert meta["format"] == 2 and meta["architecture"] == "RTMDet"
    assert meta["masks"] == {"layout": "image", "stride": 8}
    pre = meta["preprocessing"]
    assert (pre["resize_scale"], pre["pad_size"], pre["pad_pixel"]) == (
        [320, 320], [320, 320], [114.0, 114.0, 114.0])  # fmt: skip
    assert pre["bgr_to_rgb"] is False and pre["mean"] == [103.53, 116.28, 123.675]


@pytest.fixture(scope="module")
def checkpoint_docs(rtmdet_checkpoint, photos, tmp_path_factory) -> dict:
    """`cardd infer` of the checkpoint (PyTorch) at 0.05: each photo's document."""
    return infer(rtmdet_checkpoint, photos, tmp_path_factory.mktemp("rtmdet_pth") / "out", 0.05)


def test_engines_give_the_same_answers(rtmdet_checkpoint, rtmdet_onnx, photos, checkpoint_docs,
                                       tmp_path):  # fmt: skip
    """The checkpoint through PyTorch and the ONNX export through onnxruntime in a process
    without PyTorch: every detection of every photo (landscape, portrait, odd sizes, a tiny
    one, noise) within 0.5 px, 1e-3 and mask IoU 0.98; many detections, and none."""
    path, _ = rtmdet_onnx
    for threshold in (0.05, 0.99):
        expected = (checkpoint_docs if threshold == 0.05 else
                    infer(rtmdet_checkpoint, photos, tmp_path / f"pth{threshold}", threshold))
        got = infer(path, photos, tmp_path / f"onnx{threshold}", threshold, torch_free=True)
        worst = assert_same_answers(expected, got)
        counts = [len(doc["detections"]) for doc in got.values()]
        if threshold == 0.05:
            assert worst["detections"] >= 100 and min(counts[:2]) > 0, counts
        else:
            assert counts == [0] * len(photos_list(photos)), counts


def test_pth_export_runs_as_its_checkpoint(rtmdet_checkpoint, photos, checkpoint_docs, tmp_path):
    exported = tmp_path / "rtmdet.pth"
    done = run_cardd("export", "--checkpoint", rtmdet_checkpoint, "--out", exported)
    assert done.returncode == 0, done.stderr
    expected = checkpoint_docs
    got = infer(exported, photos, tmp_path / "export", 0.05)
    assert {name: doc["detections"] for name, doc in got.items()} == {
        name: doc["detections"] for name, doc in expected.items()}  # fmt: skip
    assert sum(len(doc["detections"]) for doc in got.values()) > 0


def test_serve_answers_as_infer(rtmdet_onnx, photos, tmp_path):
    """`cardd serve` of the ONNX export without PyTorch: /v1/detect gives `cardd infer`'s
    detections."""
    path, _ = rtmdet_onnx
    expected = infer(path, photos, tmp_path / "infer", 0.05, torch_free=True)
    with live_service.running(path, tmp_path / "serve.log", "--score-thr", "0.05",
                              env={**NO_TORCH, "OMP_NUM_THREADS": "1"}, config=None) as service:
        for name in ("landscape", "portrait"):
            with open(photos / f"{name}.png", "rb") as f:
                answer = requests.post(f"{service.url}/v1/detect", files={"image": f},
                                       timeout=60).json()  # fmt: skip
            assert answer["detections"] == expected[name]["detections"]


def test_assess_makes_a_claim(rtmdet_onnx, photos, tmp_path):
    """The export as damage model and, standing in for a parts model, as parts model, in
    a process without PyTorch: a claim with findings placed on parts."""
    from cardd.assess.rules import DEFAULT_RULES

    path, _ = rtmdet_onnx
    rules = tmp_path / "rules.yaml"  # the photos are drawings: no sharpness check
    rules.write_text(DEFAULT_RULES.read_text().replace("min_sharpness: 40.0", "min_sharpness: 0"))
    out = tmp_path / "claim"
    done = without_torch(
        "assess", photos / "landscape.png", photos / "portrait.png", "--damage-model", path,
        "--parts-model", path, "--rules", rules, "--device", "cpu", "--out-dir", out,
        "--score-thr", "0.05", "--parts-score-thr", "0.05",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    claim = read_json(out / "claim.json")
    assert claim["photos_usable"] == 2 and claim["findings"]
    assert claim["models"]["damage"]["sha256"] == claim["models"]["parts"]["sha256"]
    assert any(e["part"] for f in claim["findings"] for e in f["evidence"])
    assert not broken_links(out / "claim.html")


def test_fine_tunes_on_own_classes_and_resumes(rtmdet_checkpoint, own_data, tmp_path):
    """`--data my.yaml --from` an RTMDet-Ins checkpoint: the head takes the new classes;
    `--resume` continues that run."""
    work_dir = tmp_path / "own"
    common = ("train", "--config", "tiny_RTMDet_ins", "--data", own_data, "--device", "cpu",
              "--seed", "0", "--work-dir", work_dir)  # fmt: skip
    first = run_cardd(*common, "--from", rtmdet_checkpoint, "--max-epochs", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    resumed = run_cardd(*common, "--max-epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "epoch 2/2" in resumed.stdout and "epoch 1/2" not in resumed.stdout
    photo = next((own_data.parent / "images" / "val").glob("*.jpg"))
    done = run_cardd("infer", photo, "--checkpoint", work_dir / "epoch_2.pth", "--out-dir",
                     tmp_path / "out", "--score-thr", "0", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    labels = {d["label"] for d in next(iter(infer_docs(tmp_path / "out").values()))["detections"]}
    assert labels and labels <= {"paint chip", "dent", "bumper misaligned"}
