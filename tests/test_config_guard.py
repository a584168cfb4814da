"""A config inside a model file may name only what cardd ships: refused before anything runs.

Each booby-trapped file is a real export (or a weights-only training-style file)
whose config text plants `os.mkdir(sentinel)` somewhere mmengine would build it.
The refusals run through every entry point in a fresh process, as a user would
meet them; the control test shows that plain mmengine does run every plant, so
the refusals are what stands between the file and the command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cardd.config_guard import UntrustedConfigError, check_config_types, lookup_only
from cardd.configs import config_from_text
from cardd.models import EXPORT_KEY

pytestmark = pytest.mark.slow


def _mkdir(sentinel: Path) -> dict:
    return dict(type="os.mkdir", path=str(sentinel))


def _plant(cfg: dict, site: str, sentinel: Path) -> str:
    """Put the callable at `site` of a config's plain data; returns the key path refused."""
    model = cfg["model"]
    if site == "model":
        cfg["model"] = _mkdir(sentinel)
        return "model.type"
    if site == "nested":
        model["roi_head"]["mask_head"] = _mkdir(sentinel)
        return "model.roi_head.mask_head.type"
    if site == "data_preprocessor":
        model["data_preprocessor"] = _mkdir(sentinel)
        return "model.data_preprocessor.type"
    if site == "pipeline":
        cfg["test_dataloader"]["dataset"]["pipeline"][1] = _mkdir(sentinel)
        return "test_dataloader.dataset.pipeline[1].type"
    if site == "dataset":
        cfg["test_dataloader"]["dataset"] = _mkdir(sentinel)
        return "test_dataloader.dataset.type"
    if site == "evaluator":
        cfg["test_evaluator"] = _mkdir(sentinel)
        return "test_evaluator.type"
    if site == "hook":
        cfg["custom_hooks"] = [_mkdir(sentinel)]
        return "custom_hooks[0].type"
    if site == "nms":  # mmcv's batched_nms eval()s this string
        model["test_cfg"]["rcnn"]["nms"]["type"] = f"__import__('os').mkdir({str(sentinel)!r})"
        return "model.test_cfg.rcnn.nms.type"
    raise ValueError(site)


def _planted_text(export: Path, site: str, sentinel: Path) -> tuple[str, str]:
    from mmengine.config import Config

    text = torch.load(export, weights_only=True)[EXPORT_KEY]["config"]
    cfg = config_from_text(text, "the real export").to_dict()
    key_path = _plant(cfg, site, sentinel)
    return Config(cfg).pretty_text, key_path


def _booby_trapped(export: Path, out: Path, site: str, sentinel: Path, meta_cfg: bool = False):
    """A copy of a real export with its config planted (or, with `meta_cfg`, a
    training-style weights-only file whose `meta.cfg` is planted)."""
    text, key_path = _planted_text(export, site, sentinel)
    contents = torch.load(export, weights_only=True)
    if meta_cfg:
        contents = {"state_dict": contents["state_dict"], "meta": dict(contents["meta"], cfg=text)}
    else:
        contents[EXPORT_KEY]["config"] = text
    torch.save(contents, out)
    return out, key_path


ENTRY_POINTS = {
    "infer": lambda f, t, root: ["infer", str(root / "test2017"), "--checkpoint", str(f),
                                 "--device", "cpu", "--out-dir", str(t / "out")],
    "eval": lambda f, t, root: ["eval", "--checkpoint", str(f), "--data-root", str(root),
                                "--device", "cpu", "--out", str(t / "out")],
    "export": lambda f, t, root: ["export", "--checkpoint", str(f), "--out", str(t / "x.pth")],
    "serve": lambda f, t, root: ["serve", "--checkpoint", str(f), "--device", "cpu",
                                 "--port", "1"],
}  # fmt: skip

#: (where the plant is, through which entry point): every site and every entry point once.
CASES = [
    ("model", "infer"),
    ("nested", "eval"),
    ("data_preprocessor", "export"),
    ("pipeline", "detector"),
    ("dataset", "serve"),
    ("evaluator", "eval"),
    ("hook", "infer"),
    ("nms", "detector"),
    ("meta.cfg", "export"),
]


@pytest.mark.parametrize(("site", "entry"), CASES)
def test_a_planted_callable_is_refused_before_it_runs(
    site, entry, tiny_export, synthetic_root, tmp_path
):
    sentinel = tmp_path / "planted-code-ran"
    meta_cfg = site == "meta.cfg"
    evil, key_path = _booby_trapped(
        tiny_export, tmp_path / "evil.pth", "model" if meta_cfg else site, sentinel, meta_cfg
    )
    if entry == "detector":
        code = (
            "import sys; from cardd import DamageDetector; from cardd.errors import CarddError\n"
            f"try: DamageDetector(checkpoint={str(evil)!r}, device='cpu')\n"
            "except CarddError as e: print(e); sys.exit(1)\n"
        )
        argv = [sys.executable, "-c", code]
    else:
        argv = [sys.executable, "-m", "cardd", *ENTRY_POINTS[entry](evil, tmp_path, synthetic_root)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert not sentinel.exists(), f"the planted call ran through {entry}"
    assert f"{key_path} = " in output and "refused" in output, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.pth").exists()


CONTROL = """
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmdet.registry as r
init_default_scope('mmdet')
for site, text in PLANTS.items():
    cfg = Config.fromstring(text, '.py')
    try:
        if site in ('model', 'nested', 'data_preprocessor'):
            r.MODELS.build(cfg.model)
        elif site == 'pipeline':
            from mmcv.transforms import Compose
            Compose(cfg.test_dataloader.dataset.pipeline)
        elif site == 'dataset':
            r.DATASETS.build(cfg.test_dataloader.dataset)
        elif site == 'evaluator':
            r.METRICS.build(cfg.test_evaluator)
        elif site == 'hook':
            r.HOOKS.build(cfg.custom_hooks[0])
        elif site == 'nms':
            import torch
            from mmcv.ops import batched_nms
            boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
            batched_nms(boxes, torch.ones(1), torch.zeros(1), cfg.model.test_cfg.rcnn.nms)
    except Exception:
        pass  # what matters is whether the planted call ran first
"""


def test_control_plain_mmengine_runs_every_plant(tiny_export, tmp_path):
    """The same plants, built by plain mmengine/mmdet/mmcv without cardd's guard, run
    the planted call: the tests above can fail."""
    plants, sentinels = {}, {}
    for site, _ in CASES:
        if site == "meta.cfg":
            continue
        sentinels[site] = tmp_path / f"ran-{site}"
        plants[site] = _planted_text(tiny_export, site, sentinels[site])[0]
    script = tmp_path / "control.py"  # a file: seven configs overflow one argv string
    script.write_text(f"PLANTS = {plants!r}\n{CONTROL}")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [s for s, p in sentinels.items() if not p.exists()] == []


def test_the_real_export_passes_and_unknown_scopes_are_refused(tiny_export):
    text = torch.load(tiny_export, weights_only=True)[EXPORT_KEY]["config"]
    cfg = config_from_text(text, "x")  # cardd's own config: every type registered
    check_config_types(cfg, "x")
    for key, value, message in (
        ("default_scope", "antigravity", "default_scope = 'antigravity' is not a registered"),
        ("model", dict(cfg.model, _scope_="this"), "model._scope_ = 'this' is not a registered"),
        ("model", dict(cfg.model, type="mmdet.os.system"), "model.type = 'mmdet.os.system'"),
        ("model", dict(cfg.model, type=["MaskRCNN"]), "model.type = ['MaskRCNN'] is list"),
    ):
        changed = cfg.copy()
        changed[key] = value
        with pytest.raises(UntrustedConfigError, match=message.replace("[", r"\[")):
            check_config_types(changed, "x")


def test_roi_layers_are_mmcvs_op_classes_only(tiny_export):
    text = torch.load(tiny_export, weights_only=True)[EXPORT_KEY]["config"]
    cfg = config_from_text(text, "x")
    cfg.model.roi_head.bbox_roi_extractor.roi_layer.type = "batched_nms"  # a function of mmcv.ops
    with pytest.raises(UntrustedConfigError, match="roi_layer.type = 'batched_nms'"):
        check_config_types(cfg, "x")


def test_lookup_only_blocks_import_by_name_and_foreign_scopes(tmp_path):
    """The second wall, alone: inside the block mmengine finds nothing by import."""
    from mmengine.registry import MODELS

    sentinel = tmp_path / "ran"
    with lookup_only(), pytest.raises(KeyError, match="os.mkdir"):
        MODELS.build(_mkdir(sentinel))
    assert not sentinel.exists()
    MODELS.build(_mkdir(sentinel))  # outside: mmengine's own behaviour, the call runs
    assert sentinel.is_dir()


def test_meta_that_is_not_metadata_is_one_line(tiny_export, tmp_path):
    from cardd.errors import CarddError
    from cardd.models import open_model

    contents = torch.load(tiny_export, weights_only=True)
    contents["meta"] = ["not", "a", "dict"]
    bad = tmp_path / "bad.pth"
    torch.save(contents, bad)
    with pytest.raises(CarddError, match="`meta` is not a dict"):
        open_model(checkpoint=bad)
    contents["meta"] = {"dataset_meta": {"classes": 6}}
    torch.save(contents, bad)
    with pytest.raises(CarddError, match="class names are a int"):
        open_model(checkpoint=bad)
