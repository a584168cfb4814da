"""Exit 0 when the installed mmcv is VERSION with the kernels asked for.

OPS=compiled: mmcv's compiled extension, with CUDA ops if WANT_CUDA=1, built from
source patched by scripts/patch_mmcv.py at PATCH_LEVEL or later.
OPS=torchvision: `mmcv/_ext.py` is cardd's module of torchvision kernels
(cardd/torchvision_ops.py), and mmcv.ops imports with it.

Usage: python check_mmcv.py VERSION OPS WANT_CUDA PATCH_LEVEL
"""

import sys

import mmcv
import mmcv.version

version, ops, want_cuda, patch_level = (
    sys.argv[1],
    sys.argv[2],
    sys.argv[3] == "1",
    int(sys.argv[4]),
)
if mmcv.__version__ != version:
    sys.exit(1)
import mmcv._ext as ext  # noqa: E402

if ops == "torchvision":
    import mmcv.ops  # noqa: E402,F401  (checks that every kernel it names exists)

    sys.exit(
        0 if ext.__file__.endswith("_ext.py") and "torchvision" in ext.get_compiler_version() else 1
    )
has_cuda = ext.get_compiling_cuda_version() != "not available"
patched = getattr(mmcv.version, "cardd_patch", 0) >= patch_level
compiled = not ext.__file__.endswith(".py")
sys.exit(0 if compiled and (has_cuda or not want_cuda) and patched else 1)
