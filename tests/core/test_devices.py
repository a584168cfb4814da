"""One `--device` rule for every command: auto, cpu, cuda, cuda:N, checked before any work."""

import pytest
import torch
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.devices import resolve_device, runner_device
from cardd.core.errors import CarddError, CarddUsageError


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda0", "CPU", ""])
def test_anything_else_is_a_usage_error(device):
    with pytest.raises(CarddUsageError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_without_a_gpu_auto_is_cpu_and_cuda_is_refused():
    assert resolve_device("auto") == "cpu"
    for device in ("cuda", "cuda:0"):
        with pytest.raises(CarddError, match="no CUDA GPU"):
            resolve_device(device)


def test_the_gpu_index_must_be_visible(monkeypatch):
    # what PyTorch reports on a two-GPU machine; this one has none
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(CarddError, match=r"cuda:2: PyTorch sees 2 GPU\(s\) \(cuda:0, cuda:1\)"):
        resolve_device("cuda:2")
    with pytest.raises(CarddUsageError, match="one per process"):
        runner_device("cuda:1", distributed=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
@pytest.mark.parametrize("command", ["train", "eval", "infer", "serve", "export"])
def test_every_model_command_checks_the_device_first(command, tmp_path):
    args = {
        "train": ["train", "--config", "tiny_DCN_plus"],
        "eval": ["eval", "--checkpoint", str(tmp_path / "none.pth")],
        "infer": ["infer", str(tmp_path), "--checkpoint", str(tmp_path / "none.pth")],
        "serve": ["serve", "--checkpoint", str(tmp_path / "none.pth")],
        "export": ["export", "--checkpoint", str(tmp_path / "none.pth"), "--out", "x.pth"],
    }[command]
    (tmp_path / "a.jpg").write_bytes(b"")
    if command == "export":
        result = CliRunner().invoke(cli, [*args, "--device", "cuda:0"])
        assert result.exit_code == 2 and "No such option" in result.output  # runs on CPU
        return
    bad = CliRunner().invoke(cli, [*args, "--device", "gpu"])
    assert bad.exit_code == 2 and "auto, cpu, cuda or cuda:N" in bad.output, bad.output
    missing = CliRunner().invoke(cli, [*args, "--device", "cuda:1"])
    assert missing.exit_code == 1 and "no CUDA GPU" in missing.output, missing.output
    assert "Traceback" not in missing.output
