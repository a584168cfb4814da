import numpy as np
import pytest
import torch

from cardd import checkpoints
from cardd.errors import CarddError


class Payload:
    """Stands in for any class a malicious pickle could name."""


def test_cardd_work_dirs_are_trusted(tmp_path):
    path = tmp_path / "run" / "epoch_1.pth"
    checkpoints.mark_trusted_work_dir(path.parent)
    torch.save({"meta": {"obj": Payload()}}, path)
    assert checkpoints.is_trusted(path)
    assert isinstance(checkpoints.load_file(path)["meta"]["obj"], Payload)


def test_other_files_load_weights_only(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"meta": {"obj": Payload()}}, path)
    assert not checkpoints.is_trusted(path)
    with pytest.raises(CarddError, match="--trust-checkpoint"):
        checkpoints.load_file(path)
    with checkpoints.trusting(path):
        assert isinstance(checkpoints.load_file(path)["meta"]["obj"], Payload)
    assert not checkpoints.is_trusted(path)  # the opt-in ends with the block


@pytest.mark.slow
def test_cardd_checkpoint_copied_elsewhere_needs_the_opt_in(trained_work_dir, tmp_path):
    """Its message hub pickles `getattr`, which weights-only loading must not allow."""
    copy = tmp_path / "exported.pth"
    copy.write_bytes((trained_work_dir / "epoch_1.pth").read_bytes())
    with pytest.raises(CarddError, match="--trust-checkpoint"):
        checkpoints.load_file(copy)
    with checkpoints.trusting(copy):
        assert "state_dict" in checkpoints.load_file(copy)
    assert "message_hub" in checkpoints.load_file(trained_work_dir / "epoch_1.pth")


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


def test_mmengine_uses_the_loader(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    path = tmp_path / "foreign.pth"
    torch.save({"meta": {"obj": Payload()}}, path)
    checkpoints.install_loader()
    with pytest.raises(CarddError):
        _load_checkpoint(str(path))


def test_latest_checkpoint(tmp_path):
    assert checkpoints.latest_checkpoint(tmp_path) is None
    for n in (2, 10, 9):
        (tmp_path / f"epoch_{n}.pth").write_bytes(b"x")
    assert checkpoints.latest_checkpoint(tmp_path).name == "epoch_10.pth"
    (tmp_path / "last_checkpoint").write_text("/elsewhere/old/epoch_9.pth")
    assert checkpoints.latest_checkpoint(tmp_path).name == "epoch_9.pth"  # moved work dir
    with pytest.raises(CarddError, match="cardd train --config X"):
        checkpoints.resolve_checkpoint("latest", tmp_path / "none", "X")
