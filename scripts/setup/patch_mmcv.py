"""Patch mmcv 2.1.0's source before it is built (scripts/setup/setup_env.sh runs this).

1. `-std=c++17` -> `-std=c++20` in setup.py: torch >= 2.10 headers need C++20.
2. The deformable-convolution CPU kernel (`deformable_im2col`, the forward pass
   of DCN) runs single-threaded in mmcv; it is about half of DCN+'s CPU
   inference time. Each output column is written by exactly one loop index, so
   the loop is split over threads with `at::parallel_for`, torch's own OpenMP
   pool (OMP_NUM_THREADS and torch.set_num_threads apply). That needs the
   extension compiled and linked with `-fopenmp`: without it the pragma inside
   `at::parallel_for` is ignored and the loop stays serial. The extension then
   shares torch's already-loaded libgomp.so.1.
3. RoIAlign's CPU forward (`ROIAlignForward`, about 8% of DCN+'s CPU inference)
   is single-threaded too: each RoI writes its own slice of the output from its
   own precomputed sampling table, so the RoI loop is split the same way. Every
   value is computed by the same instructions as before, so outputs are
   bit-identical at any thread count.
4. `mmcv/version.py` records `cardd_patch = PATCH_LEVEL`, so that setup can
   tell a patched install from a stock one.
5. The build with ops is named `mmcv-lite`, the distribution cardd requires (its
   `torch` extra: the pure wheel from PyPI, with cardd's kernels registered in the
   process): the compiled build then replaces it as the same package, and
   `pip check` stays clean. (mmcv's setup.py would call it `mmcv`, a second
   distribution owning the same files.)

Every replacement must match exactly once; otherwise this fails loudly rather
than build something half-patched.

Usage: python patch_mmcv.py MMCV_SOURCE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

PATCH_LEVEL = 4

IM2COL_HEAD = """    const int width_col, T *data_col) {
  for (int index = 0; index < n; index++) {
    // index index of output matrix"""
IM2COL_HEAD_NEW = """    const int width_col, T *data_col) {
  // cardd: split the independent output columns over torch's thread pool.
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
  for (int index = begin; index < end; index++) {
    // index index of output matrix"""
IM2COL_TAIL = """        *data_col_ptr = val;
        data_col_ptr += batch_size * height_col * width_col;
      }
    }
  }
}"""
IM2COL_TAIL_NEW = """        *data_col_ptr = val;
        data_col_ptr += batch_size * height_col * width_col;
      }
    }
  }
  });
}"""

ROI_ALIGN_HEAD = """  for (int n = 0; n < n_rois; n++) {
    int index_n = n * channels * pooled_width * pooled_height;"""
ROI_ALIGN_HEAD_NEW = """  // cardd: split the independent RoIs over torch's thread pool.
  at::parallel_for(0, n_rois, 1, [&](int64_t begin, int64_t end) {
  for (int n = begin; n < end; n++) {
    int index_n = n * channels * pooled_width * pooled_height;"""
ROI_ALIGN_TAIL = """    }        // for c
  }          // for n
}"""
ROI_ALIGN_TAIL_NEW = """    }        // for c
  }          // for n
  });
}"""


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"patch_mmcv: expected one match in {path}, found {count}: {old[:60]!r}")
    path.write_text(text.replace(old, new))


def patch(source: Path) -> None:
    setup = source / "setup.py"
    text = setup.read_text()
    if "-std=c++17" not in text:
        raise SystemExit("patch_mmcv: no -std=c++17 in setup.py to patch")
    setup.write_text(text.replace("-std=c++17", "-std=c++20"))
    replace_once(
        setup,
        "extra_compile_args['cxx'] = ['-std=c++20']\n",
        "extra_compile_args['cxx'] = ['-std=c++20', '-fopenmp']\n",
    )
    replace_once(
        setup,
        "        extra_link_args = []\n        is_rocm_pytorch = False",
        "        extra_link_args = ['-fopenmp']\n        is_rocm_pytorch = False",
    )

    kernel = source / "mmcv/ops/csrc/pytorch/cpu/deform_conv.cpp"
    replace_once(kernel, IM2COL_HEAD, IM2COL_HEAD_NEW)
    replace_once(kernel, IM2COL_TAIL, IM2COL_TAIL_NEW)
    kernel.write_text("#include <ATen/Parallel.h>\n" + kernel.read_text())

    roi_align = source / "mmcv/ops/csrc/pytorch/cpu/roi_align.cpp"
    replace_once(roi_align, ROI_ALIGN_HEAD, ROI_ALIGN_HEAD_NEW)
    replace_once(roi_align, ROI_ALIGN_TAIL, ROI_ALIGN_TAIL_NEW)
    roi_align.write_text("#include <ATen/Parallel.h>\n" + roi_align.read_text())

    version = source / "mmcv/version.py"
    version.write_text(version.read_text() + f"\ncardd_patch = {PATCH_LEVEL}\n")
    print(f"[setup] patched mmcv source (cardd patch level {PATCH_LEVEL})")


def name_as_lite(source: Path) -> None:
    """The build with ops is the distribution `mmcv-lite` that cardd requires (item 5)."""
    replace_once(
        source / "setup.py",
        "name='mmcv' if os.getenv('MMCV_WITH_OPS', '1') == '1' else 'mmcv-lite',",
        "name='mmcv-lite',",
    )


if __name__ == "__main__":
    patch(Path(sys.argv[1]))
    name_as_lite(Path(sys.argv[1]))
