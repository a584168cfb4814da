"""`cardd train` on CPU with real mmdet: tiny_DCN_plus on synthetic data."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from cardd.checkpoints import TRUST_MARKER
from cardd.cli import cli
from cardd.errors import CarddError
from cardd.train import TrainOptions, build_config, worker_argv

pytestmark = pytest.mark.slow


def _cardd(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cardd", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_one_epoch_writes_checkpoint_config_and_logs(trained_work_dir):
    assert (trained_work_dir / "epoch_1.pth").is_file()
    assert (trained_work_dir / "tiny_DCN_plus.py").is_file()  # the merged config
    assert (trained_work_dir / TRUST_MARKER).is_file()
    logs = list(trained_work_dir.glob("*/*.log"))
    assert logs and "Epoch(train)" in logs[0].read_text()
    checkpoint = torch.load(trained_work_dir / "epoch_1.pth", weights_only=False)
    assert checkpoint["meta"]["epoch"] == 1
    assert tuple(checkpoint["meta"]["dataset_meta"]["classes"])[3] == "glass shatter"


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, synthetic_root):
    work_dir = tmp_path / "run"
    common = [
        "train",
        "--config",
        "tiny_DCN_plus",
        "--work-dir",
        str(work_dir),
        "--data-root",
        str(synthetic_root),
        "--device",
        "cpu",
        "--seed",
        "0",
    ]
    process = _cardd(*common, "--max-epochs", "3", start_new_session=True)
    deadline = time.time() + 600
    while not (work_dir / "last_checkpoint").is_file():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # as a crash or a pre-empted job would
    process.wait()
    assert not (work_dir / "epoch_3.pth").exists()

    resumed = _cardd(*common, "--max-epochs", "2", "--resume")
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resumed epoch: 1" in output
    assert torch.load(work_dir / "epoch_2.pth", weights_only=False)["meta"]["epoch"] == 2


def test_two_processes_train_an_epoch_on_cpu(tmp_path, synthetic_root):
    work_dir = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardd",
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
            "1",
            "--nproc",
            "2",
            "--cfg-options",
            "default_hooks.logger.interval=1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (work_dir / "epoch_1.pth").is_file()
    assert "Distributed launcher: pytorch" in result.stdout + result.stderr


def test_worker_argv_round_trips_the_options(tmp_path):
    opts = TrainOptions(
        config="tiny_DCN_plus",
        work_dir=tmp_path,
        seed=3,
        amp=True,
        cfg_options={"train_dataloader.batch_size": 1, "x": "a b"},
    )
    argv = worker_argv(opts)
    assert argv[argv.index("--seed") + 1] == "3" and "--amp" in argv
    assert "train_dataloader.batch_size=1" in argv and "x='a b'" in argv
    assert argv[argv.index("--launcher") + 1] == "pytorch"


def test_clear_errors_before_anything_heavy(tmp_path, synthetic_root):
    runner = CliRunner()
    unknown = runner.invoke(cli, ["train", "--config", "DCN_pls"])
    assert unknown.exit_code == 2 and "did you mean DCN_plus" in unknown.output
    missing = runner.invoke(
        cli,
        [
            "train",
            "--config",
            "tiny_DCN_plus",
            "--data-root",
            str(tmp_path / "none"),
            "--work-dir",
            str(tmp_path / "w"),
        ],
    )
    assert missing.exit_code == 1
    assert "cardd download-data" in missing.output and "cardd synth-data" in missing.output
    with pytest.raises(CarddError, match="cardd download-weights"):
        build_config(
            TrainOptions(config="DCN_plus", data_root=synthetic_root, work_dir=tmp_path / "w")
        )
    with pytest.raises(CarddError, match="no checkpoint to resume"):
        build_config(
            TrainOptions(
                config="tiny_DCN_plus",
                data_root=synthetic_root,
                work_dir=tmp_path / "empty",
                resume="auto",
            )
        )
    if not torch.cuda.is_available():
        with pytest.raises(CarddError, match="--amp needs a CUDA GPU"):
            build_config(TrainOptions(config="tiny_DCN_plus", data_root=synthetic_root, amp=True))


def test_earlier_run_is_not_overwritten(trained_work_dir, synthetic_root):
    with pytest.raises(CarddError, match="--resume to continue"):
        build_config(
            TrainOptions(
                config="tiny_DCN_plus", work_dir=trained_work_dir, data_root=synthetic_root
            )
        )
    cfg = build_config(
        TrainOptions(
            config="tiny_DCN_plus",
            work_dir=trained_work_dir,
            data_root=synthetic_root,
            exist_ok=True,
        )
    )
    assert cfg.work_dir == str(trained_work_dir)


def test_options_reach_the_config(tmp_path, synthetic_root):
    cfg = build_config(
        TrainOptions(
            config="tiny_DCN_plus",
            work_dir=tmp_path / "w",
            data_root=synthetic_root,
            seed=7,
            max_epochs=3,
            cfg_options={"train_dataloader.batch_size": 1},
            load_from="none",
        )
    )
    root = str(synthetic_root) + "/"
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.test_evaluator.ann_file == root + "annotations/instances_test2017.json"
    assert cfg.randomness.seed == 7 and cfg.train_cfg.max_epochs == 3
    assert cfg.train_dataloader.batch_size == 1 and cfg.load_from is None
