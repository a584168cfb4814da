"""Exit 0 when the installed mmcv is VERSION with the kernels asked for.

OPS=compiled: mmcv's compiled extension, with CUDA ops if WANT_CUDA=1, built from
source patched by scripts/setup/patch_mmcv.py at PATCH_LEVEL or later.
OPS=torchvision: mmcv has no compiled kernels (the mmcv-lite wheel) and `import cardd`
registers cardd's (cardd/openmmlab/kernels.py, by cardd.openmmlab.ext_finder), and
mmcv.ops imports with them.
--report: also import mmdet's models with those kernels and print one line of versions
(setup's final check, in the same interpreter so torch is imported once).

Usage: python check_mmcv.py VERSION OPS WANT_CUDA PATCH_LEVEL [--report]
"""

import sys


def has_kernels(version: str, ops: str, want_cuda: bool, patch_level: int) -> bool:
    from pathlib import Path

    import mmcv
    import mmcv.version

    import cardd  # noqa: F401  (registers cardd's kernels where mmcv has none)

    if mmcv.__version__ != version:
        return False
    import mmcv._ext as ext

    if ops == "torchvision":
        import mmcv.ops  # noqa: F401  (checks that every kernel it names exists)

        from cardd.openmmlab import kernels

        return Path(ext.__file__) == Path(kernels.__file__)
    has_cuda = ext.get_compiling_cuda_version() != "not available"
    patched = getattr(mmcv.version, "cardd_patch", 0) >= patch_level
    compiled = not ext.__file__.endswith(".py")
    return compiled and (has_cuda or not want_cuda) and patched


def report(ops: str) -> None:
    import mmcv
    import mmdet
    import mmdet.models  # noqa: F401
    import mmengine
    import torch
    from mmcv.ops import DeformConv2d, RoIAlign, nms  # noqa: F401

    import cardd  # noqa: F401

    kernels = "compiled ops" if ops == "compiled" else "torchvision kernels"
    print(
        f"[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__} ({kernels}), "
        f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}"
    )


if __name__ == "__main__":
    version, ops, want_cuda, patch_level = sys.argv[1:5]
    if not has_kernels(version, ops, want_cuda == "1", int(patch_level)):
        sys.exit(1)
    if "--report" in sys.argv[5:]:
        report(ops)
