"""Quiet by default, everything in the log files: what each command prints at each level."""

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.openmmlab.progress import TrainingProgress, validation_line
from tests.conftest import run_cardd

MMENGINE_INFO = " - mmengine - INFO - "


def _train(synthetic_root, work_dir, *flags):
    return run_cardd(
        "train", "--config", "tiny_DCN_plus", "--device", "cpu", "--data-root", synthetic_root,
        "--work-dir", work_dir, "--max-epochs", "1", "--seed", "0", *flags,
    )  # fmt: skip


@pytest.mark.slow
def test_training_shows_progress_and_keeps_mmengines_lines_in_the_log_file(
    synthetic_root, tmp_path
):
    result = _train(synthetic_root, tmp_path / "run")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert MMENGINE_INFO not in output and "upgraded to version 2" not in output
    assert "loading annotations" not in output  # pycocotools' chatter
    lines = output.strip().splitlines()
    # not a terminal: a line at the end of the epoch (4 iterations < 20), then validation
    assert any(line.startswith("epoch 1/1 iter 4/4 loss ") for line in lines), output
    assert any(line.startswith("val 1/1: box AP ") for line in lines), output
    assert lines[-1].startswith("training finished")
    assert len(lines) <= 6, output
    (log,) = (tmp_path / "run").glob("*/*.log")
    text = log.read_text()
    assert "System environment" in text and "Config:" in text and "Epoch(train)" in text


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--quiet", "--verbose"])
def test_quiet_prints_the_last_line_and_verbose_everything(flag, synthetic_root, tmp_path):
    result = _train(synthetic_root, tmp_path / "run", flag)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    if flag == "--quiet":
        final = f"training finished: checkpoints and logs in {tmp_path / 'run'}"
        assert output.strip().splitlines() == [final]
    else:
        assert MMENGINE_INFO in output and "System environment" in output
        assert "Epoch(train)" in output


@pytest.mark.slow
def test_infer_prints_a_line_per_image_and_the_rest_goes_to_infer_log(
    tiny_checkpoint, synthetic_root, tmp_path
):
    args = ["infer", str(synthetic_root / "test2017"), "--config", "tiny_DCN_plus",
            "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--no-vis"]  # fmt: skip
    result = CliRunner().invoke(
        cli, [*args, "--out-dir", str(tmp_path / "a"), "--score-thr", "0.1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == [
        "image 1/2 test2017/000011.jpg", "image 2/2 test2017/000012.jpg"
    ]
    assert " ms" in lines[0] and "x" in lines[0].split(": ")[1].split()[0]
    assert lines[-1].startswith("2 images, ") and "img/s ->" in lines[-1]
    assert "INFO" not in result.output and "upgraded" not in result.output
    assert "upgraded to version 2" in (tmp_path / "a" / "infer.log").read_text()
    quiet = CliRunner().invoke(cli, [*args, "--out-dir", str(tmp_path / "b"), "-q"])
    assert quiet.exit_code == 0 and len(quiet.output.strip().splitlines()) == 1, quiet.output
    both = CliRunner().invoke(cli, [*args, "--out-dir", str(tmp_path / "c"), "-q", "-v"])
    assert both.exit_code == 2 and "not both" in both.output


def test_without_a_terminal_a_line_per_interval_and_each_epochs_last(capsys):
    progress = TrainingProgress(interval=3, max_epochs=2, max_iters=14)
    progress.tty = False
    for index in range(7):
        progress.iteration_ended(1, index, 7, index + 1, {"loss": 1.0, "loss_cls": 0.5}, 0.02, None)
    shown = [line.split(" loss")[0] for line in capsys.readouterr().out.splitlines()]
    assert shown == ["epoch 1/2 iter 3/7", "epoch 1/2 iter 6/7", "epoch 1/2 iter 7/7"]


def test_the_validation_line_and_the_best_so_far():
    metrics = {"coco/bbox_mAP": 0.412, "coco/bbox_mAP_50": 0.603, "coco/bbox_mAP_s_cardd": 0.2,
               "coco/bbox_mAP_m_cardd": -1.0, "coco/bbox_mAP_l_cardd": 0.5}  # fmt: skip
    line = validation_line(3, 12, metrics, {"ap": 0.412, "epoch": 3})
    assert line == (
        "val 3/12: box AP 41.2 AP50 60.3 APs/m/l* 20.0/-/50.0 | best box AP 41.2 (epoch 3)"
    )


@pytest.mark.slow
def test_loading_a_model_announces_nothing_but_verbose_does(tiny_checkpoint, tmp_path):
    """mmcv's 33 "upgraded to version 2" lines (one per DCN layer) are not for a user."""
    args = ["export", "--checkpoint", str(tiny_checkpoint)]
    quiet = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a.pth")])
    assert quiet.exit_code == 0 and "upgraded" not in quiet.output, quiet.output
    assert len(quiet.output.strip().splitlines()) == 2  # what was written, its sha256
    verbose = run_cardd(*args, "--out", tmp_path / "b.pth", "--verbose")
    assert verbose.returncode == 0 and "upgraded to version 2" in verbose.stdout + verbose.stderr


@pytest.mark.slow
def test_eval_shows_where_it_is_and_keeps_mmengines_lines_in_its_folder(
    tiny_checkpoint, synthetic_root, tmp_path
):
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, [
        "eval", "--config", "tiny_DCN_plus", "--checkpoint", str(tiny_checkpoint),
        "--data-root", str(synthetic_root), "--device", "cpu", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "eval: 2/2 batches through the model" in result.output
    assert MMENGINE_INFO not in result.output
    (log,) = out.glob("*/*.log")
    assert "Epoch(test)" in log.read_text()
