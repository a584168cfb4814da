"""`cardd train` on CPU with real mmdet: tiny_DCN_plus on synthetic data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.core.errors import CarddError
from cardd.models import checkpoints
from cardd.train.options import TrainOptions
from cardd.train.runner import build_config, worker_argv
from tests.openmmlab.test_startup import TRAIN_PHASES

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
    # recorded as this user's own: resume may unpickle it, nothing else grants that
    assert checkpoints.is_recorded(trained_work_dir / "epoch_1.pth")
    assert not list(trained_work_dir.glob(".cardd*"))
    logs = list(trained_work_dir.glob("*/*.log"))
    assert logs and "Epoch(train)" in logs[0].read_text()
    checkpoint = torch.load(trained_work_dir / "epoch_1.pth", weights_only=False)
    assert checkpoint["meta"]["epoch"] == 1
    assert tuple(checkpoint["meta"]["dataset_meta"]["classes"])[3] == "glass shatter"
    # where the start-up seconds went, phase by phase, in the log and beside it
    (report,) = trained_work_dir.glob("*/startup.json")
    phases = json.loads(report.read_text())["phases"]
    assert [p["phase"] for p in phases] == ["options", *TRAIN_PHASES]  # a later run: from now
    assert all(p["seconds"] >= 0 for p in phases)
    log = logs[0].read_text()
    assert "start-up" in log and "environment log" in log


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
        "--cfg-options",  # one iteration per epoch: resuming is what is tested
        "train_dataloader.dataset.indices=2",
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
    assert "epoch 2/2 iter 1/1" in output and "epoch 1/2" not in output  # resumed at epoch 2
    assert f"resuming from {work_dir / 'epoch_1.pth'}" in output  # said on the terminal
    logs = sorted(work_dir.glob("*/*.log"))
    assert "resumed epoch: 1" in logs[-1].read_text()  # mmengine's line, in the run's log file
    assert "Loads checkpoint by" in logs[-1].read_text()  # a bare print() before
    assert "Loads checkpoint" not in output
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
    output = result.stdout + result.stderr
    assert output.count("epoch 1/1 iter") == 1, output  # progress from rank 0 only
    (log,) = work_dir.glob("*/*.log")
    assert "Distributed launcher: pytorch" in log.read_text()
    # rank 0 reports the start-up of a fresh process, counted from its start
    (report,) = work_dir.glob("*/startup.json")
    phases = [p["phase"] for p in json.loads(report.read_text())["phases"]]
    assert phases == ["interpreter, imports and options", *TRAIN_PHASES]


def test_worker_argv_parses_back_into_the_same_options(tmp_path):
    """What torchrun's workers receive is what the user asked for, option by option:
    every option given a value that is not its default, so each must travel."""
    import dataclasses

    from cardd.core import options

    opts = TrainOptions(
        config="tiny_DCN_plus",
        work_dir=tmp_path / "w",
        data_root=tmp_path / "d",
        data=tmp_path / "my-data.yaml",
        load_from="none",
        from_model=tmp_path / "start.pth",
        resume="auto",
        device="cpu",
        seed=3,
        max_epochs=5,
        amp=True,
        trust_checkpoint=True,
        exist_ok=True,
        profile_startup=True,
        profile_steps=3,
        profile_after=2,
        cfg_options={"train_dataloader.batch_size": 1, "x": "a b", "y": [1, 2]},
    )
    defaults = TrainOptions()
    supervisor_decides = {"nproc", "launcher"}
    for f in dataclasses.fields(TrainOptions):
        if f.name not in supervisor_decides:
            assert getattr(opts, f.name) != getattr(defaults, f.name), f.name  # all tested
    argv = worker_argv(opts)
    params = cli.commands["train"].make_context("train", list(argv)).params
    parsed = options.from_params(TrainOptions, params)
    assert parsed == TrainOptions(**{**opts.__dict__, "launcher": "pytorch"})


def test_max_epochs_scales_the_lr_steps(tmp_path):
    cfg = build_config(TrainOptions(config="DCN_plus", max_epochs=12), check_files=False)
    warmup, steps = cfg.param_scheduler
    assert (steps.milestones, steps.end) == ([8, 11], 12)
    assert (warmup.by_epoch, warmup.end) == (False, 500)  # iterations: unchanged
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_cfg.val_interval == 6
    short = build_config(TrainOptions(config="DCN_plus", max_epochs=3), check_files=False)
    assert short.param_scheduler[1].milestones == [2, 3] and short.train_cfg.val_interval == 3


def test_print_config_needs_no_data_and_explains_the_lr(tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(
            cli,
            [
                "train",
                "--config",
                "DCN_plus",
                "--print-config",
                "--max-epochs",
                "12",
                "--cfg-options",
                "train_dataloader.batch_size=2",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "milestones=[\n" in result.output or "milestones=[" in result.output
        assert "effective lr: 0.0025 = 0.005 x total batch 2 / base_batch_size 4" in result.output
        assert not any(Path(".").iterdir())  # nothing written


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
            "--profile-startup",
        ],
    )
    assert missing.exit_code == 1
    assert "cardd download-data" in missing.output and "cardd synth-data" in missing.output
    assert sys.getprofile() is None  # the start-up profiler stops with the failed run
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
