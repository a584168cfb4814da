"""`cardd.core.files`: one writer that stays in its folder, one check of names from elsewhere."""

from __future__ import annotations

import os
import stat

import pytest

from cardd.core import storage
from cardd.core.errors import CarddError
from cardd.core.files import UnsafeNameError, private_dir, safe_relative, write_file
from cardd.models import checkpoints
from tests.conftest import Trap


@pytest.mark.parametrize("name", ["a.jpg", "inbox/2026/a.jpg", "a b/%2e%2e.jpg", "..a/b..jpg"])
def test_plain_names_below_a_folder_are_accepted(name):
    assert str(safe_relative(name)) == name


@pytest.mark.parametrize(
    "name", ["", "/x.png", "inbox/../../x.png", "..", "./a.jpg", "a//b.jpg", "a/.", "a\0b"]
)
def test_names_that_could_leave_a_folder_are_refused(name):
    with pytest.raises(UnsafeNameError):
        safe_relative(name)


def test_a_write_replaces_a_planted_link_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").symlink_to(victim)
    write_file(out / "result.json", "{}", root=out)
    assert victim.read_text() == "precious"
    assert not (out / "result.json").is_symlink() and (out / "result.json").read_text() == "{}"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((out / "result.json").stat().st_mode) == 0o666 & ~mask


def test_a_link_planted_as_a_subfolder_cannot_carry_a_write_out(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "vis").symlink_to(elsewhere, target_is_directory=True)
    folder = storage.Folder(out)
    with pytest.raises(UnsafeNameError, match="leads outside"):
        folder.write_bytes("vis/a.jpg", b"x")
    with pytest.raises(UnsafeNameError):
        folder.write_bytes("preds/../../x.json", b"x")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "x.json").exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    def half_then_fail(path):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(CarddError, match="cannot write .*No space left"):
        write_file(tmp_path / "model.pth", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_the_private_cache_refuses_a_folder_open_to_others(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = private_dir("ray-models")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # as if another local user had made it first
    with pytest.raises(CarddError, match="not a private folder"):
        private_dir("ray-models")


def test_trust_by_hash_is_not_inherited_by_a_swapped_file(tiny_export, tmp_path):
    """The Ray worker trusts the bytes the driver checked, by their hash: a file swapped
    after the check is refused, not unpickled (control: trusted by path, it runs)."""
    import torch

    digest = checkpoints.file_sha256(tiny_export)
    sentinel = tmp_path / "swapped-pickle-ran"
    swapped = tmp_path / f"{digest}.pth"
    torch.save({"state_dict": {}, "meta": {"x": Trap(sentinel)}}, swapped)
    with checkpoints.trusting_sha256(digest), pytest.raises(CarddError, match="holds more"):
        checkpoints.read_checkpoint(swapped)
    assert not sentinel.exists()
    with checkpoints.trusting(swapped):
        checkpoints.read_checkpoint(swapped)
    assert sentinel.exists()


def test_a_killed_writers_partial_file_is_never_a_result_and_is_swept(tmp_path):
    """SIGKILL mid-write leaves write_file's hidden temporary file: `files()` never lists
    it, and `remove_partials` (run when a job's writes are done) takes it away."""
    import tempfile

    folder = storage.Folder(tmp_path)
    folder.write_text("preds/a.jpg.json", "{}")
    _, stale = tempfile.mkstemp(dir=tmp_path / "preds", prefix=".b.", suffix=".part.json")
    (tmp_path / ".keep.part").write_text("a user's file, not write_file's name")
    assert folder.files() == {"preds/a.jpg.json", ".keep.part"}
    folder.remove_partials()
    assert not os.path.exists(stale) and (tmp_path / ".keep.part").exists()
