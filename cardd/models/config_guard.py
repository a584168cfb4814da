"""The last wall while a model file's model is built: mmengine imports nothing by name.

A model file's model is built from a shipped config and the file's checked record
(`cardd.models.record`), so it names only classes cardd ships. Should a path not
foreseen there still carry a name, mmengine's `Registry.get` would import any
dotted name it has not registered (`get_object_from_string`) and a scope name
would make it import `<scope>.registry`. Within `lookup_only` both are switched
off: classes are found by registry lookup alone, scopes only in mmengine, mmdet,
mmcv and cardd.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: Packages whose modules mmengine may import by scope while a file's model is built.
TRUSTED_PACKAGES = ("mmengine", "mmdet", "mmcv", "cardd")


_guard_lock = threading.Lock()
_guard_depth = 0
_originals: dict = {}


def _refuse_import_by_name(name: str) -> None:
    """In place of mmengine's `get_object_from_string`: nothing is found by import, so
    the registry reports the name as unknown."""
    return None


def _scoped_import(name: str, package: str | None = None):
    import importlib

    if name.split(".")[0] not in TRUSTED_PACKAGES:
        raise ImportError(f"{name}: not imported while a model file's config is built")
    return importlib.import_module(name, package)


@contextlib.contextmanager
def lookup_only() -> Iterator[None]:
    """Within the block, mmengine's registries find classes by lookup alone: the
    import-by-dotted-name fallback raises, and scope imports are limited to
    mmengine, mmdet, mmcv and cardd."""
    global _guard_depth
    from mmengine.registry import registry

    with _guard_lock:
        if _guard_depth == 0:
            _originals["get_object_from_string"] = registry.get_object_from_string
            _originals["import_module"] = registry.import_module
            registry.get_object_from_string = _refuse_import_by_name
            registry.import_module = _scoped_import
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                registry.get_object_from_string = _originals.pop("get_object_from_string")
                registry.import_module = _originals.pop("import_module")
