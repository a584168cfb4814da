from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.doctor import diagnose


def test_doctor_reports_a_working_stack(tmp_path):
    report = diagnose(tmp_path / "CarDD_COCO", tmp_path)
    rows = dict(report.rows)
    assert report.ok, report.problems
    # which kernels, and how they got there
    assert rows["mmcv kernels"].startswith(
        ("cardd's torchvision kernels, registered in this process", "mmcv's compiled kernels")
    )
    assert rows["mmdet"] == "3.3.0" and rows["mmcv"] == "2.1.0"
    assert rows["dataset"].endswith("missing (fetch it with `cardd download-data`)")
    assert rows["onnxruntime"].endswith("runs cardd's ONNX exports")


def test_an_install_without_pytorch_is_an_onnx_install():
    """Where torch cannot be imported but onnxruntime can (`make onnx-env`), the stack is
    not broken: the report says what that install runs."""
    import os
    from pathlib import Path

    from tests.conftest import run_cardd

    blocked = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "support" / "no_torch")}
    done = run_cardd("doctor", env=blocked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not installed (the ONNX runtime: pip install cardd)" in done.stdout
    assert "runs cardd's ONNX exports" in done.stdout


def test_doctor_cli_exit_zero():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ok: the stack works" in result.output


def test_a_command_of_the_full_install_says_how_to_get_it_in_the_onnx_one(tmp_path):
    """Where PyTorch is not installed (`pip install cardd`), training is one line naming
    the install that has it, not a traceback."""
    import os
    from pathlib import Path

    from tests.conftest import run_cardd

    blocked = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "support" / "no_torch")}
    done = run_cardd("train", "--config", "tiny_DCN_plus", "--work-dir", tmp_path / "w",
                     env=blocked)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert 'pip install "cardd[torch]"' in done.stderr and "not installed" in done.stderr
