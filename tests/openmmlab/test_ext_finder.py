"""mmcv's kernels registered in the process: `import cardd` gives mmcv.ops cardd's kernels
where mmcv has none (the mmcv-lite wheel), and never hides compiled ones.

Each check runs in a fresh process: whether `mmcv._ext` is found depends on what the
process imported first.
"""

import subprocess
import sys

from tests.conftest import installed_ops


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_mmcv_ops_get_cardds_kernels_only_through_import_cardd():
    with_cardd = _python(
        "import cardd, mmcv.ops, mmcv._ext as ext\n"
        "from cardd.openmmlab import kernels\n"
        "from cardd.openmmlab.ext_finder import kernels_in_use\n"
        "print(ext.__file__ == kernels.__file__)\n"
        "print(kernels_in_use())\n"
    )
    assert with_cardd.returncode == 0, with_cardd.stderr[-2000:]
    same_file, how = with_cardd.stdout.strip().splitlines()
    if installed_ops() == "compiled":  # the compiled module is found first, never hidden
        assert same_file == "False" and how.startswith("mmcv's compiled kernels")
        return
    assert same_file == "True" and how.startswith("cardd's torchvision kernels, registered")
    without = _python("import mmcv.ops")  # the wheel alone has no kernels: cardd supplies them
    assert without.returncode != 0 and "mmcv._ext" in without.stderr


def test_a_kernel_cardd_does_not_write_is_a_one_line_error():
    if installed_ops() == "compiled":
        return  # mmcv's own kernels have it
    done = _python(
        "import cardd, mmcv._ext as ext\n"
        "try:\n    ext.ms_deform_attn_forward(None)\n"
        "except Exception as error:\n    print(type(error).__name__, error)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("UnsupportedOp") and "CARDD_OPS=compiled" in done.stdout
