"""Shared fixtures: tiny real datasets and a tiny real checkpoint, built once per session.

The trust registry (`cardd.models.checkpoints`) lives in a fresh temporary folder.
Thread counts are capped before torch is imported: on a 2-core machine OpenMP
threads that outnumber the cores make small CPU training steps ~100x slower.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
# The trust registry of the checkpoints the tests train: theirs, not the user's.
os.environ["CARDD_STATE"] = tempfile.mkdtemp(prefix="cardd-state-")

import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from cardd.data.synth import synthesize  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A 12-image synthetic dataset folder holding CarDD_COCO/ (train 8, val 2, test 2)."""
    dest = tmp_path_factory.mktemp("synthetic")
    synthesize(dest, images=12, seed=0)
    return dest


@pytest.fixture(scope="session")
def synthetic_root(synthetic_data) -> Path:
    """The CarDD_COCO folder of `synthetic_data`."""
    return synthetic_data / "CarDD_COCO"


@pytest.fixture
def dataset_copy(synthetic_data, tmp_path) -> Path:
    """A private copy of the synthetic dataset folder, free to damage."""
    copy = tmp_path / "data"
    shutil.copytree(synthetic_data, copy)
    return copy


@pytest.fixture
def release_zip(tmp_path, synthetic_root) -> Path:
    """A zip laid out like the CarDD release, holding the synthetic dataset."""
    from tests.support.zips import release_zip_of

    return release_zip_of(tmp_path / "CarDD_release.zip", synthetic_root)


@pytest.fixture(scope="session")
def trained_work_dir(tmp_path_factory, synthetic_root) -> Path:
    """`tiny_DCN_plus` trained for one epoch on the synthetic data (real mmdet, CPU)."""
    from cardd.train.options import TrainOptions
    from cardd.train.runner import train

    work_dir = tmp_path_factory.mktemp("tiny_run") / "work_dir"
    train(
        TrainOptions(
            config="tiny_DCN_plus",
            work_dir=work_dir,
            data_root=synthetic_root,
            device="cpu",
            max_epochs=1,
            seed=0,
        )
    )
    return work_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(trained_work_dir) -> Path:
    checkpoint = trained_work_dir / "epoch_1.pth"
    assert checkpoint.is_file()
    return checkpoint


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    """`cardd export` of `tiny_checkpoint`: weights, classes and the config as text."""
    from cardd.export.options import ExportOptions
    from cardd.export.run import export_model

    out = tmp_path_factory.mktemp("tiny_export") / "tiny.pth"
    export_model(ExportOptions(out=out, checkpoint=str(tiny_checkpoint)))
    return out


@pytest.fixture(scope="session")
def photos(synthetic_root, tmp_path_factory):
    """Real-sized photos from the synthetic test split: landscape and portrait at CarDD's
    size, odd sizes, one smaller than the network's stride, a blank one."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("photos")
    sources = sorted((synthetic_root / "test2017").glob("*.jpg"))
    sizes = {"landscape": (1024, 768), "portrait": (768, 1024), "odd": (1001, 333),
             "tall_odd": (417, 1203), "tiny": (97, 131)}  # fmt: skip
    for index, (name, size) in enumerate(sizes.items()):
        image = cv2.imread(str(sources[index % len(sources)]))
        cv2.imwrite(str(folder / f"{name}.png"), cv2.resize(image, size))
    # nearly blank: a flat grey is symmetric, and its exactly equal scores may be kept in
    # either order by either engine; a little noise makes it a photo
    noise = np.random.default_rng(0).normal(127, 4, (600, 800, 3))
    cv2.imwrite(str(folder / "blank.png"), noise.clip(0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def spool_dir(tmp_path_factory) -> Path:
    """The shared service's TMPDIR: an upload spooled to disk would land here."""
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="session")
def service(tiny_checkpoint, tmp_path_factory, spool_dir):
    """`cardd serve` of the tiny checkpoint, running on loopback for the whole session
    (the API tests and the web-page test share it: one model load), with small limits."""
    from tests.support import live_service

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with live_service.running(
        tiny_checkpoint, log, "--max-upload-mb", "1", "--max-pixels", "4000000",
        env={"TMPDIR": str(spool_dir)},
    ) as running:  # fmt: skip
        yield running


def run_cardd(*args: str, timeout: float = 300, **kwargs):
    """`cardd ARGS` in a fresh process, as a user runs it: nothing an earlier test
    registered in mmengine's process-global registries can help it."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "cardd", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )  # fmt: skip


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


class Trap:
    """Unpickling this object runs `os.mkdir(sentinel)`: a stand-in for any code a
    booby-trapped checkpoint could run. Nothing may create the sentinel unless the
    user vouched for the file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.mkdir, (str(self.sentinel),))


def booby_trap(checkpoint: Path, out: Path, sentinel: Path) -> Path:
    """`checkpoint` (a real one) with a `Trap` hidden in its metadata, saved to `out`."""
    import torch

    from cardd.models import checkpoints

    with checkpoints.trusting(checkpoint):
        contents = checkpoints.load_file(checkpoint)
    contents["meta"]["trap"] = Trap(sentinel)
    torch.save(contents, out)
    return out


def broken_links(page: Path) -> list[str]:
    """Every relative href/src of an HTML file that does not name an existing file."""
    import re
    from urllib.parse import unquote

    text = page.read_text()
    targets = re.findall(r'(?:href|src)="?([^" >]+)', text)
    assert targets, f"{page} links nothing"
    return [t for t in targets if not (page.parent / unquote(t)).is_file()]


def assert_real_picture(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    """A decodable picture of at least `min_size` that is not one flat colour."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.width >= min_size[0] and image.height >= min_size[1], image.size
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5, f"{path} is blank"


def installed_ops() -> str:
    """Which mmcv kernels `make setup` installed: `torchvision` or `compiled`."""
    import mmcv._ext

    return "torchvision" if mmcv._ext.__file__.endswith(".py") else "compiled"


#: For tests of mmcv's compiled kernels, or that compare with them.
requires_compiled = pytest.mark.skipif(
    installed_ops() != "compiled", reason="mmcv's compiled kernels are not installed"
)


#: A claims team's own classes: ids from 0 with gaps, not CarDD's.
OWN_CLASSES = (("paint chip", 0), ("dent", 4), ("bumper misaligned", 7))


@pytest.fixture(scope="session")
def own_data(synthetic_root, tmp_path_factory) -> Path:
    """The description file of a 3-class dataset (`OWN_CLASSES`) without a test split."""
    from tests.support.datasets import categories, relabel

    names, ids = zip(*OWN_CLASSES, strict=True)
    folder = tmp_path_factory.mktemp("own") / "claims"
    return relabel(synthetic_root, folder, categories(list(names), list(ids)), copy_images=True)


@pytest.fixture(scope="session")
def own_run(own_data, tiny_export, tmp_path_factory):
    """`cardd train --data own_data --from tiny_export`, one epoch, in a fresh process:
    (work dir, what it printed)."""
    work_dir = tmp_path_factory.mktemp("own_run") / "work_dir"
    result = run_cardd(
        "train", "--config", "tiny_DCN_plus", "--data", own_data, "--from", tiny_export,
        "--max-epochs", "1", "--device", "cpu", "--seed", "0", "--work-dir", work_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return work_dir, result.stdout


@pytest.fixture(scope="session")
def walkaround(tmp_path_factory):
    """An 8-s walk-around video (`tests.support.videos.WALK`): held still, a pan with a
    blurred and a dark second, a zoom; 640x480 at 10 fps, mp4v."""
    from tests.support.videos import make_walkaround

    return make_walkaround(tmp_path_factory.mktemp("video") / "walk.mp4")


@pytest.fixture(scope="session")
def rtmdet_checkpoint(synthetic_root, tmp_path_factory) -> Path:
    """`tiny_RTMDet_ins` trained with its own recipe (20 epochs, about a minute) in a fresh
    process, as a user runs `cardd train`: its last checkpoint."""
    work_dir = tmp_path_factory.mktemp("rtmdet_run") / "work_dir"
    result = run_cardd(
        "train", "--config", "tiny_RTMDet_ins", "--data-root", synthetic_root, "--device",
        "cpu", "--seed", "0", "--work-dir", work_dir, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    checkpoint = work_dir / "epoch_20.pth"
    assert checkpoint.is_file(), sorted(p.name for p in work_dir.iterdir())
    return checkpoint


@pytest.fixture(scope="session")
def rtmdet_onnx(rtmdet_checkpoint, tmp_path_factory) -> tuple[Path, str]:
    """`cardd export --format onnx` of `rtmdet_checkpoint`: (the file, what it printed)."""
    out = tmp_path_factory.mktemp("rtmdet_onnx") / "tiny_rtmdet.onnx"
    done = run_cardd("export", "--checkpoint", rtmdet_checkpoint, "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


#: The session fixtures that train a model (or stand on one): a test that asks for
#: any of them, however indirectly, is in the `model` tier.
TRAINED = {"trained_work_dir", "tiny_checkpoint", "tiny_export", "service", "own_run",
           "rtmdet_checkpoint", "rtmdet_onnx"}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Sort each test into its tier by what it uses (`make test-fast` leaves out the
    `slow`, `model`, `browser` and `cluster` ones)."""
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
        if item.path.name == "test_web.py":
            item.add_marker(pytest.mark.browser)
        if item.path.name == "test_infer_ray.py":
            item.add_marker(pytest.mark.cluster)
