import subprocess
import sys

from click.testing import CliRunner

from cardd import __version__
from cardd.cli.main import cli


def test_help_imports_no_torch_or_mmdet():
    code = (
        "import sys; from click.testing import CliRunner; from cardd.cli.main import cli; "
        "r = CliRunner().invoke(cli, ['--help']); "
        "[CliRunner().invoke(cli, [c, '--help']) for c in cli.commands]; "
        "heavy = [m for m in ('torch', 'mmdet', 'mmengine', 'mmcv', 'cv2') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy or r.exit_code else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_is_listed_with_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "doctor",
        "download-data",
        "download-weights",
        "reduce-data",
        "check-data",
        "synth-data",
        "train",
        "eval",
        "infer",
        "demo",
    ):
        assert command in result.output
        sub = CliRunner().invoke(cli, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_version_and_module_entry():
    assert __version__ in CliRunner().invoke(cli, ["--version"]).output
    result = subprocess.run(
        [sys.executable, "-m", "cardd", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and __version__ in result.stdout


def test_unknown_command_and_bad_option_exit_two():
    assert CliRunner().invoke(cli, ["fly"]).exit_code == 2
    assert CliRunner().invoke(cli, ["synth-data", "--images", "2"]).exit_code == 2


def test_an_unforeseen_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    import cardd.visualize.plots

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cardd.visualize.plots, "training_curves", broken)
    monkeypatch.delenv("CARDD_DEBUG", raising=False)
    result = CliRunner().invoke(cli, ["plot", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: ZeroDivisionError: division by zero (set CARDD_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("CARDD_DEBUG", "1")
    debug = CliRunner().invoke(cli, ["plot", str(tmp_path)])
    assert isinstance(debug.exception, ZeroDivisionError)  # raised, with its traceback
