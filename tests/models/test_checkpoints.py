"""Which files may run code when loaded: only a checkpoint this user's `cardd train`
wrote (byte for byte) and the file named by --trust-checkpoint."""

import shutil
from datetime import date

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.models import checkpoints
from tests.conftest import Trap, booby_trap


def _trap_file(tmp_path, name="trap.pth"):
    sentinel = tmp_path / "trap-ran"
    path = tmp_path / name
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"x": Trap(sentinel)}}, path)
    return path, sentinel


def test_the_trap_works_when_trusted(tmp_path):
    """The trap used below is real: unpickled in full, it runs."""
    path, sentinel = _trap_file(tmp_path)
    with checkpoints.trusting(path):
        checkpoints.load_file(path)
    assert sentinel.is_dir()


def test_a_stray_file_loads_weights_only_and_runs_nothing(tmp_path):
    path, sentinel = _trap_file(tmp_path)
    with pytest.raises(CarddError, match="--trust-checkpoint") as error:
        checkpoints.load_file(path)
    assert "\n" not in str(error.value)
    assert not sentinel.exists()


def test_a_marker_next_to_the_file_grants_nothing(tmp_path):
    path, sentinel = _trap_file(tmp_path)
    (tmp_path / ".cardd-work-dir").write_text("checkpoints in this folder were written by cardd")
    (tmp_path / "last_checkpoint").write_text(str(path))
    with pytest.raises(CarddError):
        checkpoints.load_file(path)
    assert not sentinel.exists()


def test_recorded_bytes_are_trusted_and_edits_lose_the_trust(tmp_path):
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"history": date(2026, 1, 1)}}, path)  # not weights-only
    with pytest.raises(CarddError):
        checkpoints.load_file(path)
    checkpoints.record_trusted(path)
    assert checkpoints.is_recorded(path)
    assert checkpoints.load_file(path)["meta"]["history"] == date(2026, 1, 1)
    copy = tmp_path / "copy.pth"
    shutil.copy(path, copy)  # the same bytes are the same checkpoint
    assert checkpoints.load_file(copy)["meta"]["history"] == date(2026, 1, 1)
    torch.save({"meta": {"history": date(2026, 1, 2)}}, path)  # rewritten in place
    assert not checkpoints.is_recorded(path)
    with pytest.raises(CarddError):
        checkpoints.load_file(path)


def test_a_file_rewritten_while_it_loads_is_loaded_as_hashed(tmp_path, monkeypatch):
    """The recorded bytes are trusted; a rewrite of the same file in place, between the
    hash and the load, must not get the trap it holds unpickled."""
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"history": date(2026, 1, 1)}}, path)  # not weights-only
    checkpoints.record_trusted(path)
    trap, sentinel = _trap_file(tmp_path, "trap.pth")
    recorded = checkpoints._recorded_hashes

    def rewrite_then_answer():  # runs after the hash is taken, before the full load
        path.write_bytes(trap.read_bytes())
        return recorded()

    monkeypatch.setattr(checkpoints, "_recorded_hashes", rewrite_then_answer)
    contents, digest = checkpoints.read_checkpoint(path)
    assert contents["meta"]["history"] == date(2026, 1, 1) and not sentinel.exists()
    assert digest in recorded()


def test_a_saved_checkpoint_is_recorded_before_it_appears_whole(tmp_path, monkeypatch):
    import hashlib
    import os

    data = b"checkpoint bytes"
    target = tmp_path / "epoch_2.pth"
    monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(CarddError, match="killed"):  # a run stopped between record and rename
        checkpoints.save_recorded(data, target)
    assert list(tmp_path.iterdir()) == []  # no half-written file, no partial left
    assert hashlib.sha256(data).hexdigest() in checkpoints._recorded_hashes()
    monkeypatch.undo()
    assert checkpoints.save_recorded(data, target) == hashlib.sha256(data).hexdigest()
    assert target.read_bytes() == data and checkpoints.is_recorded(target)


def test_training_records_the_bytes_it_wrote(trained_work_dir):
    saved = sorted(trained_work_dir.glob("*.pth"))
    assert saved and all(checkpoints.is_recorded(p) for p in saved)
    assert not list(trained_work_dir.glob(".*partial*"))


def test_registry_lives_in_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CARDD_STATE", str(tmp_path / "state"))
    assert checkpoints.trust_registry() == tmp_path / "state" / "trusted_checkpoints.txt"
    path = tmp_path / "w.pth"
    torch.save({"meta": {"s": date(2026, 1, 1)}}, path)
    digest = checkpoints.record_trusted(path)
    assert checkpoints.trust_registry().read_text().startswith(digest + " ")
    monkeypatch.delenv("CARDD_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert checkpoints.state_dir() == tmp_path / "xdg" / "cardd"


def test_the_opt_in_ends_with_its_block(tmp_path):
    path, sentinel = _trap_file(tmp_path)
    with checkpoints.trusting(path):
        checkpoints.load_file(path)
    sentinel.rmdir()
    with pytest.raises(CarddError):
        checkpoints.load_file(path)
    assert not sentinel.exists()


def test_plain_weights_and_numpy_load(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(
        {
            "state_dict": {"w": torch.ones(2)},
            "meta": {"best": np.float64(0.5), "arr": np.arange(3)},
        },
        path,
    )
    loaded = checkpoints.load_file(path)
    assert loaded["meta"]["best"] == 0.5 and list(loaded["meta"]["arr"]) == [0, 1, 2]


def test_not_a_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CarddError, match="not a readable checkpoint"):
        checkpoints.load_file(path)


def test_mmengine_uses_the_loader(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    path, sentinel = _trap_file(tmp_path)
    checkpoints.install_loader()
    with pytest.raises(CarddError):
        _load_checkpoint(str(path))
    assert not sentinel.exists()


def test_latest_and_best_checkpoint(tmp_path):
    assert checkpoints.latest_checkpoint(tmp_path) is None
    for n in (2, 10, 9):
        (tmp_path / f"epoch_{n}.pth").write_bytes(b"x")
    assert checkpoints.latest_checkpoint(tmp_path).name == "epoch_10.pth"
    (tmp_path / "last_checkpoint").write_text("/elsewhere/old/epoch_9.pth")
    assert checkpoints.latest_checkpoint(tmp_path).name == "epoch_9.pth"  # moved work dir
    with pytest.raises(CarddError, match="cardd train --config X"):
        checkpoints.resolve_checkpoint("latest", tmp_path / "none", "X")
    with pytest.raises(CarddError, match="no best"):
        checkpoints.resolve_checkpoint("best", tmp_path, "X")
    (tmp_path / "best_coco_bbox_mAP_epoch_9.pth").write_bytes(b"x")
    best = checkpoints.resolve_checkpoint("best", tmp_path, "X")
    assert best.name == "best_coco_bbox_mAP_epoch_9.pth"


# --- the whole tool: a booby-trapped checkpoint in each place a user meets one ---------


@pytest.fixture
def shared_work_dir(trained_work_dir, tmp_path):
    """A colleague's work dir, copied here whole (config, logs, pointer, old marker),
    with its newest checkpoint booby-trapped."""
    copy = tmp_path / "colleague" / "work_dir"
    shutil.copytree(trained_work_dir, copy)
    (copy / ".cardd-work-dir").write_text("checkpoints in this folder were written by cardd")
    sentinel = tmp_path / "trap-ran"
    booby_trap(trained_work_dir / "epoch_1.pth", copy / "epoch_1.pth", sentinel)
    return copy, sentinel


def _cli(*args):
    return CliRunner().invoke(cli, list(args))


def _assert_refused(result, sentinel):
    assert result.exit_code == 1, result.output
    assert "--trust-checkpoint" in result.output and "Traceback" not in result.output
    assert not sentinel.exists()


@pytest.mark.slow
def test_copied_work_dir_infer_runs_nothing(shared_work_dir, synthetic_root, tmp_path):
    work_dir, sentinel = shared_work_dir
    result = _cli(
        "infer",
        str(synthetic_root / "test2017"),
        "--config",
        "tiny_DCN_plus",
        "--work-dir",
        str(work_dir),
        "--device",
        "cpu",
        "--out-dir",
        str(tmp_path / "out"),
    )
    _assert_refused(result, sentinel)


@pytest.mark.slow
def test_copied_work_dir_eval_runs_nothing(shared_work_dir, synthetic_root, tmp_path):
    work_dir, sentinel = shared_work_dir
    result = _cli(
        "eval",
        "--config",
        "tiny_DCN_plus",
        "--work-dir",
        str(work_dir),
        "--data-root",
        str(synthetic_root),
        "--split",
        "val",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "eval"),
    )
    _assert_refused(result, sentinel)
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.slow
def test_copied_work_dir_resume_runs_nothing(shared_work_dir, synthetic_root):
    work_dir, sentinel = shared_work_dir
    result = _cli(
        "train",
        "--config",
        "tiny_DCN_plus",
        "--work-dir",
        str(work_dir),
        "--data-root",
        str(synthetic_root),
        "--device",
        "cpu",
        "--max-epochs",
        "2",
        "--resume",
    )
    _assert_refused(result, sentinel)
    assert not (work_dir / "epoch_2.pth").exists()


@pytest.mark.slow
def test_python_api_runs_nothing(shared_work_dir):
    from cardd import DamageDetector

    work_dir, sentinel = shared_work_dir
    with pytest.raises(CarddError, match="--trust-checkpoint"):
        DamageDetector("tiny_DCN_plus", work_dir / "epoch_1.pth", device="cpu")
    assert not sentinel.exists()


@pytest.mark.slow
def test_own_checkpoint_swapped_after_training_runs_nothing(trained_work_dir, tmp_path):
    from cardd import DamageDetector

    own = tmp_path / "own"
    shutil.copytree(trained_work_dir, own)
    # byte for byte what training wrote: trusted, full mmengine checkpoint loads
    assert "message_hub" in checkpoints.load_file(own / "epoch_1.pth")
    DamageDetector("tiny_DCN_plus", own / "epoch_1.pth", device="cpu")
    sentinel = tmp_path / "trap-ran"
    booby_trap(trained_work_dir / "epoch_1.pth", tmp_path / "swap.pth", sentinel)
    (tmp_path / "swap.pth").replace(own / "epoch_1.pth")
    with pytest.raises(CarddError, match="--trust-checkpoint"):
        DamageDetector("tiny_DCN_plus", own / "epoch_1.pth", device="cpu")
    assert not sentinel.exists()
