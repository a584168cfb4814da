"""The install: mmcv as scripts/setup/setup_env.sh builds it.

Patched, with compiled ops, and the right numbers.
"""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import installed_ops, requires_compiled

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "setup"
PATCH_LEVEL = runpy.run_path(str(SCRIPTS / "patch_mmcv.py"))["PATCH_LEVEL"]


def test_installed_mmcv_has_the_kernels_setup_promised():
    ops = installed_ops()
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "check_mmcv.py"), "2.1.0", ops, "0", str(PATCH_LEVEL)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    other = "compiled" if ops == "torchvision" else "torchvision"
    has_kernels = runpy.run_path(str(SCRIPTS / "check_mmcv.py"))["has_kernels"]
    assert has_kernels("2.1.0", ops, False, PATCH_LEVEL)
    assert not has_kernels("2.1.0", other, False, PATCH_LEVEL)  # it tells the two apart
    assert not has_kernels("2.2.0", ops, False, PATCH_LEVEL)


def test_the_compiled_build_is_the_mmcv_lite_cardd_requires(tmp_path):
    (tmp_path / "setup.py").write_text(
        "setup(\n    name='mmcv' if os.getenv('MMCV_WITH_OPS', '1') == '1' else 'mmcv-lite',\n)\n"
    )
    runpy.run_path(str(SCRIPTS / "patch_mmcv.py"))["name_as_lite"](tmp_path)
    assert "name='mmcv-lite'," in (tmp_path / "setup.py").read_text()


def test_patch_refuses_a_source_it_does_not_know(tmp_path):
    (tmp_path / "setup.py").write_text("extra_compile_args['cxx'] = ['-std=c++17']\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "patch_mmcv.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "expected one match" in result.stderr


@requires_compiled
@pytest.mark.parametrize("threads", [1, 2])
def test_multithreaded_deform_conv_matches_torchvision(threads):
    """The patched kernel computes what torchvision's deform_conv2d does, at any thread count."""
    import torchvision
    from mmcv.ops import DeformConv2d

    torch.manual_seed(0)
    x = torch.randn(2, 16, 23, 31)
    offset = torch.randn(2, 18, 23, 31) * 2  # 2 * 3 * 3 offsets, some far outside the map
    conv = DeformConv2d(16, 8, 3, padding=1, bias=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            ours = conv(x, offset)
    finally:
        torch.set_num_threads(before)
    reference = torchvision.ops.deform_conv2d(x, offset, conv.weight.detach(), padding=1)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@requires_compiled
def test_multithreaded_roi_align_is_bit_identical_to_one_thread():
    """The patched RoIAlign splits RoIs over threads; every value is computed as before."""
    import torchvision
    from mmcv.ops import RoIAlign

    torch.manual_seed(0)
    features = torch.randn(2, 32, 50, 60)
    boxes = torch.rand(300, 4) * torch.tensor([60.0, 50.0, 60.0, 50.0])
    boxes[:, 2:] = boxes[:, :2] + boxes[:, 2:].abs() / 2 + 1
    rois = torch.cat([torch.randint(0, 2, (300, 1)).float(), boxes], dim=1)
    layer = RoIAlign((7, 7), spatial_scale=1.0, sampling_ratio=0, aligned=True)
    outputs = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outputs[threads] = layer(features, rois)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outputs[1], outputs[2])
    reference = torchvision.ops.roi_align(features, rois, (7, 7), 1.0, 0, aligned=True)
    torch.testing.assert_close(outputs[2], reference, rtol=1e-5, atol=1e-5)


def test_pip_configuration_reaches_uv():
    """What pip is configured to install from (`pip config list`), uv installs from too:
    environment over [install] over [global], every value of a multi-valued option."""
    uv_install = runpy.run_path(str(SCRIPTS / "uv_install.py"))
    listing = "\n".join(
        [
            "global.index-url='https://mirror.example/simple'",
            "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
            "global.find-links='/global/wheels'",
            "install.find-links='/install/wheels'",
            ":env:.find-links='/env/wheels'",
            "global.constraint='/etc/constraints.txt'",
            "global.trusted-host='mirror.example'",
            "global.cert='/etc/ssl/bundle.pem'",
            "global.timeout='60'",
            "not a setting",
        ]
    )
    config = uv_install["pip_config"](listing)
    assert config["find-links"] == "/env/wheels"  # the environment wins
    args, env = uv_install["uv_arguments"](config)
    assert args == [
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///opt/a/simple",
        "--extra-index-url", "file:///opt/b/simple",
        "--find-links", "/env/wheels",
        "--constraint", "/etc/constraints.txt",
        "--allow-insecure-host", "mirror.example",
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    assert env == {"SSL_CERT_FILE": "/etc/ssl/bundle.pem"}
    assert uv_install["uv_arguments"](uv_install["pip_config"](""))[0] == []  # plain PyPI
    no_index = uv_install["pip_config"]("global.no-index='true'\nglobal.find-links='/w'")
    assert "--no-index" in uv_install["uv_arguments"](no_index)[0]


@pytest.mark.slow
def test_the_wheel_installs_from_wheels_only_and_runs_as_a_user_runs_it():
    """`scripts/setup/check_wheel.py` on this Python: the wheel and sdist built and their
    contents checked, `cardd[torch]` installed with every compiler failing and no sdist
    allowed, then doctor, synth-data, a training epoch, infer and an ONNX export from an
    empty folder; `cardd` alone (no PyTorch) runs that ONNX model; pip check in both."""
    done = subprocess.run([sys.executable, str(SCRIPTS / "check_wheel.py")],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pass: cardd[torch] installed" in done.stdout
