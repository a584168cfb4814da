from click.testing import CliRunner

from cardd.cli import cli
from cardd.doctor import diagnose


def test_doctor_reports_a_working_stack(tmp_path):
    report = diagnose(tmp_path / "CarDD_COCO", tmp_path)
    rows = dict(report.rows)
    assert report.ok, report.problems
    assert rows["mmcv kernels"].startswith(("torchvision", "compiled"))
    assert rows["mmdet"] == "3.3.0" and rows["mmcv"] == "2.1.0"
    assert rows["dataset"].endswith("missing (fetch it with `cardd download-data`)")


def test_doctor_cli_exit_zero():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ok: the stack works" in result.output
