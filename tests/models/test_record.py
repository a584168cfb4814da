"""A model file holds data, never a config to build: mmdet's own constructors cannot be reached.

Each booby-trapped file is a real export made into what an attacker would ship:
a format-1 export or a training-style file whose config text plants one of
mmdet's registered classes that run or load their arguments in their constructor
(`CameraMotionCompensation` eval()s `warp_mode`; `KnowledgeDistillation...`
executes a `teacher_config` file; `LAD` fetches and unpickles `teacher_ckpt` from
a URL), or a format-2 export whose record carries more than data. The refusals
run through every entry point in a fresh process, as a user meets them; the
control test builds the same plants with plain mmengine and sees each one run,
so the refusals are what stands between the file and the command.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cardd.core.errors import CarddError
from cardd.models.formats import EXPORT_KEY
from cardd.models.record import RecordError, config_from_record, record_of
from tests.conftest import Trap
from tests.support.http_server import FileServer

pytestmark = pytest.mark.slow

MMDET_CONFIGS = Path(__import__("mmdet").__file__).parent / ".mim" / "configs"


def _tiny_config(export: Path) -> dict:
    contents = torch.load(export, weights_only=True)
    cfg, _ = config_from_record(contents[EXPORT_KEY]["model"], "the real export")
    return cfg.to_dict()


def _mmdet_model(relative: str) -> dict:
    from mmengine.config import Config

    return Config.fromfile(str(MMDET_CONFIGS / relative)).to_dict()["model"]


def _plant(cfg: dict, site: str, sentinel: Path, url: str) -> str:
    """Put a constructor that runs code at `site` of a config; returns the refused key."""
    if site == "camera_motion":  # any TASK_UTILS slot built with the model
        cfg["model"]["rpn_head"]["bbox_coder"] = dict(
            type="CameraMotionCompensation",
            warp_mode=f"__import__('os').mkdir({str(sentinel)!r})",
        )
        return "model.rpn_head.bbox_coder.type"
    if site == "teacher_config":  # Config.fromfile executes the teacher's .py
        teacher = sentinel.with_name("teacher.py")
        teacher.write_text(f"__import__('os').mkdir({str(sentinel)!r})\nmodel = dict()\n")
        model = _mmdet_model("ld/ld_r18-gflv1-r101_fpn_1x_coco.py")
        cfg["model"] = dict(model, teacher_config=str(teacher), teacher_ckpt=None)
        return "model.type"
    if site == "teacher_ckpt":  # fetched by torch.hub and unpickled in full
        cfg["model"] = dict(_mmdet_model("lad/lad_r50-paa-r101_fpn_2xb8_coco_1x.py"),
                            teacher_ckpt=url)  # fmt: skip
        return "model.type"
    raise ValueError(site)


def _planted_text(export: Path, site: str, sentinel: Path, url: str) -> tuple[str, str]:
    from mmengine.config import Config

    cfg = _tiny_config(export)
    key_path = _plant(cfg, site, sentinel, url)
    return Config(cfg).pretty_text, key_path


def _old_style(export: Path, out: Path, text: str, meta_cfg: bool) -> Path:
    """A format-1 export carrying `text` (or a training-style file with it as `meta.cfg`)."""
    contents = torch.load(export, weights_only=True)
    if meta_cfg:
        contents = {"state_dict": contents["state_dict"], "meta": dict(contents["meta"], cfg=text)}
    else:
        del contents[EXPORT_KEY]["model"]
        contents[EXPORT_KEY]["config"] = text
    torch.save(contents, out)
    return out


ENTRY_POINTS = {
    "infer": lambda f, t, root: ["infer", str(root / "test2017"), "--checkpoint", str(f),
                                 "--device", "cpu", "--out-dir", str(t / "out")],
    "ray": lambda f, t, root: ["infer", str(root / "test2017"), "--checkpoint", str(f),
                               "--engine", "ray", "--device", "cpu", "--out-dir", str(t / "out")],
    "eval": lambda f, t, root: ["eval", "--checkpoint", str(f), "--data-root", str(root),
                                "--device", "cpu", "--out", str(t / "out")],
    "export": lambda f, t, root: ["export", "--checkpoint", str(f), "--out", str(t / "x.pth")],
    "serve": lambda f, t, root: ["serve", "--checkpoint", str(f), "--device", "cpu",
                                 "--port", "1"],
    "assess": lambda f, t, root: ["assess", str(root / "test2017"), "--damage-model", str(f),
                                  "--device", "cpu", "--out-dir", str(t / "out")],
}  # fmt: skip

#: (the plant, how it travels, through which entry point): each plant and entry point.
CASES = [
    ("camera_motion", "export", "infer"),
    ("camera_motion", "meta.cfg", "eval"),
    ("camera_motion", "export", "detector"),
    ("teacher_config", "meta.cfg", "export"),
    ("teacher_config", "export", "serve"),
    ("teacher_ckpt", "export", "assess"),
    ("teacher_ckpt", "meta.cfg", "ray"),
    ("teacher_ckpt", "export", "detector"),
]


def _run_entry(entry: str, model: Path, tmp_path: Path, root: Path):
    if entry == "detector":
        code = (
            "import sys; from cardd import DamageDetector\n"
            "from cardd.core.errors import CarddError\n"
            f"try: DamageDetector(checkpoint={str(model)!r}, device='cpu')\n"
            "except CarddError as e: print(e); sys.exit(1)\n"
        )
        argv = [sys.executable, "-c", code]
    else:
        argv = [sys.executable, "-m", "cardd", *ENTRY_POINTS[entry](model, tmp_path, root)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    return result, result.stdout + result.stderr


@pytest.fixture(scope="module")
def trap_server(tmp_path_factory):
    """Serves a pickle that runs `os.mkdir(sentinel)` when unpickled in full."""
    sentinel = tmp_path_factory.mktemp("http-trap") / "downloaded-pickle-ran"
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "x": Trap(sentinel)}, buffer)
    with FileServer() as server:
        server.files["/teacher.pth"] = buffer.getvalue()
        yield server, f"{server.base_url}/teacher.pth", sentinel


@pytest.mark.parametrize(("site", "carrier", "entry"), CASES)
def test_a_planted_constructor_is_refused_before_it_runs(
    site, carrier, entry, tiny_export, synthetic_root, tmp_path, trap_server
):
    server, url, downloaded = trap_server
    sentinel = tmp_path / "planted-code-ran"
    text, key_path = _planted_text(tiny_export, site, sentinel, url)
    evil = _old_style(tiny_export, tmp_path / "evil.pth", text, carrier == "meta.cfg")
    requests = len(server.requests)
    result, output = _run_entry(entry, evil, tmp_path, synthetic_root)
    assert result.returncode == 1, output
    assert not sentinel.exists() and not downloaded.exists(), f"the plant ran through {entry}"
    assert len(server.requests) == requests, "the teacher checkpoint was fetched"
    assert f"{key_path} = " in output and "is not a class cardd ships" in output, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.pth").exists()


CONTROL = """
import os, sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmdet.registry as r
init_default_scope('mmdet')
for site, text in PLANTS.items():
    cfg = Config.fromstring(text, '.py')
    try:
        r.MODELS.build(cfg.model)
    except Exception as error:
        print(site, type(error).__name__, str(error)[:200], file=sys.stderr)
"""


def test_control_plain_mmengine_runs_every_plant(tiny_export, tmp_path, trap_server):
    """The same configs, built by plain mmengine/mmdet without cardd, run each plant:
    the tests above can fail."""
    server, url, downloaded = trap_server
    plants, sentinels = {}, {}
    for site in sorted({site for site, _, _ in CASES}):
        sentinels[site] = tmp_path / f"ran-{site}"
        plants[site] = _planted_text(tiny_export, site, sentinels[site], url)[0]
    script = tmp_path / "control.py"
    script.write_text(f"PLANTS = {plants!r}\n{CONTROL}")
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch-home")}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    ran = {site: path.exists() for site, path in sentinels.items()}
    ran["teacher_ckpt"] = downloaded.exists()
    assert ran == dict.fromkeys(ran, True), result.stderr[-2000:]


def _record(export: Path) -> dict:
    return copy.deepcopy(torch.load(export, weights_only=True)[EXPORT_KEY]["model"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(config="import os"), "unknown field 'config'"),
        (lambda r: r.update(architecture="../../evil"), "is not one cardd ships"),
        (lambda r: r.update(format=1), "re-export it with this version"),
        (lambda r: r["test_cfg"]["rcnn"]["nms"].update(type="__import__('os')"),
         "only the shipped 'nms'"),
        (lambda r: r["test_cfg"]["rcnn"].update(bbox_coder={"type": "X"}), "unknown key"),
        (lambda r: r["test_cfg"]["rcnn"].update(score_thr=float("nan")), "not a number in"),
        (lambda r: r["test_cfg"]["rcnn"].update(max_per_img="lots"), "not a number"),
        (lambda r: r["test_cfg"]["rcnn"].update(max_per_img=10**9), "not a number in"),
        (lambda r: r["data_preprocessor"].update(std=[0, 1, 1]), "std must be positive"),
        (lambda r: r.update(test_resize=[0, 0]), "not [w, h] in 32..8192"),
        (lambda r: r.update(classes="dent"), "`classes` is not a list"),
        (lambda r: r.update(palette=[[999, 0, 0]] * 6), "`palette` is not a list"),
    ],
)
def test_a_record_is_data_of_the_shipped_shape_only(tiny_export, change, message):
    record = _record(tiny_export)
    change(record)
    with pytest.raises(RecordError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config_from_record(record, "x")


def test_a_record_rebuilds_its_model_and_fields_apply(tiny_export):
    record = _record(tiny_export)
    record["test_cfg"]["rcnn"]["max_per_img"] = 7
    record["test_resize"] = [640, 480]
    cfg, classes = config_from_record(record, "x")
    assert cfg.model.test_cfg.rcnn.max_per_img == 7
    assert cfg.test_dataloader.dataset.pipeline[1]["scale"] == (640, 480)
    assert classes.names == tuple(record["classes"])
    assert record_of(cfg, classes) == record  # the same record comes back


def test_a_model_of_the_users_own_config_has_no_record(tiny_export, tmp_path):
    """A changed architecture is no shipped config plus fields: it needs --config."""
    cfg, classes = config_from_record(_record(tiny_export), "x")
    cfg.model.roi_head.mask_head.num_convs = 3
    assert record_of(cfg, classes) is None
    contents = torch.load(tiny_export, weights_only=True)
    contents[EXPORT_KEY]["model"] = None
    contents[EXPORT_KEY]["config_file"] = "my_config.py"
    own = tmp_path / "own.pth"
    torch.save(contents, own)
    from cardd.models.model_file import open_model

    with pytest.raises(CarddError, match="my_config.py that cardd does not ship.*--config"):
        open_model(checkpoint=own)
    assert open_model("tiny_DCN_plus", own).classes.names == classes.names  # named: loads


def test_an_old_file_loads_only_through_a_record(tiny_export, tmp_path):
    """A format-1 export's text that is cardd's own config (plus plants where nothing is
    built: a hook, an evaluator) loads, from the shipped config; the plants stay unbuilt."""
    from mmengine.config import Config

    from cardd.models.model_file import open_model

    cfg = _tiny_config(tiny_export)
    sentinel = tmp_path / "ran"
    cfg["custom_hooks"] = [dict(type="os.mkdir", path=str(sentinel))]
    cfg["test_evaluator"] = dict(type="os.mkdir", path=str(sentinel))
    old = _old_style(tiny_export, tmp_path / "old.pth", Config(cfg).pretty_text, False)
    model_file = open_model(checkpoint=old)
    assert model_file.config_source.startswith("tiny_DCN_plus (recorded in")
    assert "custom_hooks" not in str(model_file.cfg.get("custom_hooks", ""))  # the shipped one
    assert not sentinel.exists()


def test_lookup_only_blocks_import_by_name_and_foreign_scopes(tmp_path):
    """The last wall, alone: inside the block mmengine finds nothing by import."""
    from mmengine.registry import MODELS

    from cardd.models.config_guard import lookup_only

    sentinel = tmp_path / "ran"
    with lookup_only(), pytest.raises(KeyError, match="os.mkdir"):
        MODELS.build(dict(type="os.mkdir", path=str(sentinel)))
    assert not sentinel.exists()
    MODELS.build(dict(type="os.mkdir", path=str(sentinel)))  # outside: the call runs
    assert sentinel.is_dir()


def test_meta_that_is_not_metadata_is_one_line(tiny_export, tmp_path):
    from cardd.models.model_file import open_model

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
