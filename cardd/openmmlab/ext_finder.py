"""`mmcv._ext` from cardd's kernels, in this process, when mmcv has none of its own.

mmcv.ops loads its compiled kernels with `importlib.import_module("mmcv._ext")`. The
`mmcv-lite` wheel (pure Python, what `pip install cardd` installs) has no such
module, so `import mmcv.ops` fails there. `install()` appends a finder to the END of
`sys.meta_path`: Python's own finders look first, so a compiled `_ext` (the
`CARDD_OPS=compiled` build) is always the one used, and only where none exists does
this finder answer, with a module holding `cardd.openmmlab.kernels`' functions (and
its `__getattr__`, which makes every other kernel mmcv names raise a one-line error
naming the op). Nothing is written into mmcv's folder.

This module imports nothing heavy (not even `importlib.abc`: the import system needs
only the methods): `import cardd` installs the finder, and torch is imported only when
mmcv.ops actually asks for its kernels.
"""

from __future__ import annotations

import importlib.machinery
import sys

NAME = "mmcv._ext"


class _KernelsLoader:
    """Makes `mmcv._ext` a module of cardd's kernels (as `from kernels import *` would)."""

    def create_module(self, spec):
        return None  # a plain module, filled below

    def exec_module(self, module) -> None:
        from cardd.openmmlab import kernels

        module.__dict__.update(
            {k: v for k, v in vars(kernels).items() if not k.startswith("__")}
        )
        module.__getattr__ = kernels.__getattr__  # every other mmcv kernel: a clear error
        module.__file__ = kernels.__file__  # a .py file: how doctor and tests tell them apart
        module.__doc__ = "mmcv's kernels from cardd (cardd.openmmlab.kernels), in this process."


class _LastResortFinder:
    """Finds `mmcv._ext` only when no other finder did (it sits last on sys.meta_path)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        return importlib.machinery.ModuleSpec(NAME, _KernelsLoader(), origin="cardd")


def install() -> None:
    """Put the finder last on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _LastResortFinder) for finder in sys.meta_path):
        sys.meta_path.append(_LastResortFinder())


def kernels_in_use() -> str:
    """Which kernels `mmcv._ext` gives in this process, and how they got there."""
    import importlib

    ext = importlib.import_module(NAME)
    spec = getattr(ext, "__spec__", None)
    if spec is not None and isinstance(spec.loader, _KernelsLoader):
        return "cardd's torchvision kernels, registered in this process (mmcv-lite has none)"
    if str(getattr(ext, "__file__", "")).endswith(".py"):
        return "cardd's torchvision kernels, from mmcv/_ext.py (written by an older setup)"
    return f"mmcv's compiled kernels ({ext.__file__})"
