"""Exit 0 when the installed mmcv is VERSION with compiled ops (with CUDA if WANT_CUDA=1),
built from source patched by scripts/patch_mmcv.py at PATCH_LEVEL or later.

Usage: python check_mmcv.py VERSION WANT_CUDA PATCH_LEVEL
"""

import sys

import mmcv
import mmcv.version
from mmcv.utils import ext_loader

version, want_cuda, patch_level = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
ext = ext_loader.load_ext("_ext", ["get_compiling_cuda_version"])
has_cuda = ext.get_compiling_cuda_version() != "not available"
patched = getattr(mmcv.version, "cardd_patch", 0) >= patch_level
sys.exit(0 if mmcv.__version__ == version and (has_cuda or not want_cuda) and patched else 1)
