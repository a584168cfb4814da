"""Exit 0 when the installed mmcv is VERSION with compiled ops (with CUDA if WANT_CUDA=1).

Usage: python check_mmcv.py VERSION WANT_CUDA
"""

import sys

import mmcv
from mmcv.utils import ext_loader

version, want_cuda = sys.argv[1], sys.argv[2] == "1"
ext = ext_loader.load_ext("_ext", ["get_compiling_cuda_version"])
has_cuda = ext.get_compiling_cuda_version() != "not available"
sys.exit(0 if mmcv.__version__ == version and (has_cuda or not want_cuda) else 1)
