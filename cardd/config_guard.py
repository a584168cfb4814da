"""Configs that came inside a model file: every class they name is looked up, never imported.

A config read from a `cardd export` file or from a training checkpoint's `meta.cfg`
is someone else's text. `cardd.configs.config_from_text` makes sure it is plain
data, but plain data still names what mmengine builds: `dict(type='os.system',
command=...)` is plain data, and mmengine's `Registry.get` imports any dotted
name it has not registered (`get_object_from_string`) and calls it. Two more
doors of the same kind: a scope name (`_scope_`, `default_scope`) makes mmengine
import `<scope>.registry`, and mmcv's `batched_nms` runs `eval()` on the type
of an `nms` config.

So, before anything is built from such a config:

* `check_config_types` walks it and refuses, in one line naming the key path
  and the value, any `type` that is not a class registered in mmengine's,
  mmdet's or cardd's registries (found by lookup alone), any scope that is not
  one of theirs, an `nms` type other than mmcv's two NMS functions, and a RoI
  layer that is not one of mmcv's op classes;
* `lookup_only` is the second wall while the model, the pipeline and the
  runner are built: mmengine's import-by-name fallback and its scope imports
  are switched off, so a path the check did not foresee still cannot import.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from cardd.errors import CarddError

#: The strings mmcv's `batched_nms` passes to `eval()` that name its NMS functions.
NMS_TYPES = ("nms", "soft_nms")
#: Packages whose modules mmengine may import by scope while a file's model is built.
TRUSTED_PACKAGES = ("mmengine", "mmdet", "mmcv", "cardd")


class UntrustedConfigError(CarddError):
    """A config from a model file names something cardd does not ship."""


def _all_registries() -> list:
    """mmengine's root registries and all their descendants (mmdet's); `_populate`
    imports their locations when a name is not found in what is registered so far."""
    import mmdet.registry  # noqa: F401  (adds mmdet's registries as children)
    import mmengine.registry as roots

    import cardd.mmdet_plugins  # noqa: F401  (cardd's hooks and metric)

    found, stack = [], [v for v in vars(roots).values() if isinstance(v, roots.Registry)]
    while stack:
        registry = stack.pop()
        if any(registry is seen for seen in found):
            continue
        found.append(registry)
        stack.extend(registry._children.values())
    return found


def _populate(registries: list) -> None:
    """Import every registry's locations (each does it once: later calls cost nothing)."""
    for registry in registries:
        registry.import_from_location()


def _registered(name: str, registries: list) -> bool:
    return any(name in registry._module_dict for registry in registries)


def _roi_layer_classes() -> set[str]:
    """Names of mmcv's op classes that mmdet's RoI extractors may take (`getattr(ops, t)`)."""
    import mmcv.ops
    import torch

    return {
        name
        for name in dir(mmcv.ops)
        if isinstance(getattr(mmcv.ops, name, None), type)
        and issubclass(getattr(mmcv.ops, name), torch.nn.Module)
    }


def _class_problem(value: Any, key: str, registries: list) -> str | None:
    """Why `value`, the `type` of the dict under `key`, may not be built (None: it may)."""
    if not isinstance(value, str):
        return f"is {type(value).__name__} {value!r}, not the name of a registered class"
    if key == "nms":
        return None if value in NMS_TYPES else f"is not one of mmcv's NMS functions {NMS_TYPES}"
    if key == "roi_layer":
        return None if value in _roi_layer_classes() else "is not one of mmcv's RoI layers"
    scope, _, name = value.rpartition(".")
    scopes = {registry.scope for registry in registries}
    if scope and scope not in scopes:
        return "is not a registered class"
    if not _registered(name, registries):
        _populate(registries)
    return None if _registered(name, registries) else "is not a registered class"


def _walk(node: Any, path: str = "", owner: str = "") -> Iterator[tuple[str, str, str, Any]]:
    """(path, owner, key, value) of every `type` and `_scope_` in a config's plain data;
    `owner` is the key of the dict that holds it (`nms` for `model...nms.type`)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key in ("type", "_scope_"):
                yield here, owner, key, value
            else:
                yield from _walk(value, here, str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]", owner)


def check_config_types(cfg, source: str) -> None:
    """Refuse a config from a model file that names anything but cardd's own classes.

    Raises:
        UntrustedConfigError: one line naming the key path and the value.
    """
    registries = _all_registries()
    scopes = {registry.scope for registry in registries}
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    default_scope = data.get("default_scope", "mmdet")
    if default_scope is not None and default_scope not in scopes:
        raise UntrustedConfigError(
            f"{source}: default_scope = {default_scope!r} is not a registered scope "
            f"({', '.join(sorted(scopes))})"
        )
    for path, owner, key, value in _walk(data):
        if key == "_scope_":
            problem = None if value in scopes else "is not a registered scope"
        else:
            problem = _class_problem(value, owner, registries)
        if problem:
            raise UntrustedConfigError(f"{source}: {path} = {value!r} {problem}; refused")


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
